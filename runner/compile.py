"""The runner's engine configuration, its fingerprint, and ahead-of-time compilation.

This module is the public API the publish workflow's activity calls: it precompiles a component with
exactly the Config the runner uses, and stores the artifact under `engine_fingerprint()`. A serialized
artifact only deserializes under an identical engine configuration, wasmtime version and platform, so
every flag that changes generated code is part of the fingerprint.

    artifact = precompile(wasm_bytes)
    store.put(artifact_key(content_hash, engine_fingerprint()), artifact)
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from functools import cache
from importlib.metadata import version

import wasmtime
from wasmtime.component import Component

from runner.errors import ModuleRejected

__all__ = ["ENGINE_FLAGS", "engine_config", "engine_fingerprint", "new_engine", "precompile"]

# Every Config flag the runner sets. Fuel metering and epoch checks are compiled into the code, so
# an artifact built without them would not load (and would not be metered).
ENGINE_FLAGS: dict[str, bool | str | int] = {
    "consume_fuel": True,
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
    "wasm_component_model": True,
    "parallel_compilation": True,
    # 1 MiB of wasm stack: deep recursion traps as a stack overflow instead of eating host stack.
    "max_wasm_stack": 1024 * 1024,
    # GC objects and exception objects live in a per-store GC heap that the store limiter sizes like
    # one more linear memory, outside the memory count: with them a guest could hold twice its cap
    # (runner/_limits.py). No toolchain the project supports emits either.
    "wasm_gc": False,
    "wasm_exceptions": False,
}

# Flags above that do not change the bytes of an artifact (left out of the fingerprint).
_NOT_CODEGEN = frozenset({"parallel_compilation"})


def engine_config() -> wasmtime.Config:
    """A fresh `wasmtime.Config` with the runner's flags (a Config is consumed by one Engine)."""
    cfg = wasmtime.Config()
    for name, value in ENGINE_FLAGS.items():
        setattr(cfg, name, value)
    return cfg


def new_engine() -> wasmtime.Engine:
    """An Engine with the runner's configuration: one per process in the runner."""
    return wasmtime.Engine(engine_config())


@cache
def engine_fingerprint() -> str:
    """Identify the code an engine produces: wasmtime version, codegen flags and platform.

    Returns a blob-key-safe string such as `wasmtime-50.0.1-x86_64-linux-3f2a...`.
    """
    flags = {k: v for k, v in sorted(ENGINE_FLAGS.items()) if k not in _NOT_CODEGEN}
    wt_version = version("wasmtime")
    machine = platform.machine().lower() or "unknown"
    doc = json.dumps({"wasmtime": wt_version, "flags": flags, "machine": machine, "os": sys.platform})
    digest = hashlib.sha256(doc.encode()).hexdigest()[:16]
    return f"wasmtime-{wt_version}-{machine}-{sys.platform}-{digest}".lower()


def precompile(wasm: bytes, *, engine: wasmtime.Engine | None = None) -> bytes:
    """Compile a component with the runner's configuration and return the serialized artifact.

    Args:
        wasm: the component binary (`dist/main.wasm`).
        engine: an engine built by `new_engine()` to reuse; a fresh one otherwise.

    Raises:
        ModuleRejected: the bytes are not a valid component.
    """
    try:
        component = Component(engine or new_engine(), wasm)
    except wasmtime.WasmtimeError as exc:
        raise ModuleRejected(f"not a valid component: {str(exc).splitlines()[0]}") from None
    return bytes(component.serialize())
