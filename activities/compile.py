"""Ahead-of-time compilation of a component for the runner's engine (COMPILE_TASK_QUEUE).

Compiling a large component takes seconds of CPU, so it runs on a dedicated thread pool (wasmtime
releases the GIL while compiling) and heartbeats meanwhile: a worker killed mid-compile is noticed
within the heartbeat timeout instead of the whole start-to-close timeout.

Each bundle gets its own artifact (`artifacts/<bundle hash>/...`, what the registry records and the
runner loads), but the compilation itself is cached by the component's own hash
(`compiled/<wasm sha256>/...`): a new version whose component is byte-identical to an earlier one (a
manifest, config schema or UI change) copies that compilation instead of compiling again. The copy
keeps every version's artifact independent: discarding a failed publish's artifact, or a version's,
never touches another's. A cache entry is written only from a compilation of exactly those bytes and
is never deleted by a failed publish (it stays valid for any bundle holding that component).
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio import activity

from activities._errors import activity_errors
from bundles.blobstore import BlobStore, artifact_key, compiled_key
from bundles.inspect import inspect_bundle
from runner.compile import engine_fingerprint, precompile
from schema.payloads.publish import PrecompileInput, PrecompileResult

HEARTBEAT_EVERY_S = 2.0

log = structlog.get_logger(__name__)


class CompileActivities:
    def __init__(self, store: BlobStore, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self.executor = executor

    def _compile(self, staging_key: str, content_hash: str, key: str, fingerprint: str) -> tuple[str, int]:
        if self.store.exists(key):
            data = self.store.get(key)  # compiled by an earlier attempt: content addressed
        else:
            bundle = inspect_bundle(self.store.get(staging_key), expected_hash=content_hash, check_wasm=False)
            cached = compiled_key(hashlib.sha256(bundle.wasm).hexdigest(), fingerprint)
            if self.store.exists(cached):
                data = self.store.get(cached)
                log.info("compile_cache_hit", key=cached)
            else:
                data = precompile(bundle.wasm)
                self.store.put(cached, data)
            self.store.put(key, data)
        return hashlib.sha256(data).hexdigest(), len(data)

    @activity.defn(name="precompile_component")
    async def precompile_component(self, inp: PrecompileInput) -> PrecompileResult:
        fingerprint = engine_fingerprint()
        key = artifact_key(inp.content_hash, fingerprint)
        loop = asyncio.get_running_loop()
        with activity_errors():
            fut = loop.run_in_executor(
                self.executor, self._compile, inp.staging_key, inp.content_hash, key, fingerprint
            )
            while True:
                done, _ = await asyncio.wait({fut}, timeout=HEARTBEAT_EVERY_S)
                if done:
                    break
                activity.heartbeat()
            sha256, size = fut.result()
        log.info("artifact_stored", key=key, size=size, fingerprint=fingerprint)
        return PrecompileResult(artifact_key=key, engine_fingerprint=fingerprint, sha256=sha256, size=size)
