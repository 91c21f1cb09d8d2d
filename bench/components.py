"""Compile vs deserialize, and memory per loaded component: `python -m bench.components [--rounds N]`.

The Python-SDK hello sample (examples/hello, ~18 MB of component: CPython inside), with the runner's
engine configuration (runner.compile.new_engine):

* compile: `runner.compile.precompile` (what the publish workflow does once per version), vs
  `Component.deserialize` of the artifact (bytes in memory) and `Component.deserialize_file` (an mmap:
  the runner's ComponentCache path); the three alternate round by round in one process;
* memory per loaded component: RSS growth per component kept loaded (k distinct loads of the artifact,
  by each path), next to the artifact's size; and after one instantiate (store, no call).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime.component import Component, Linker

from bench.report import Row, render
from runner.compile import new_engine, precompile
from tests.runner.runner_helpers import ROOT, python_guest

MIB = 2**20


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _rss_per(load: Callable[[], object], k: int) -> float:
    """RSS growth per loaded object, in MiB, keeping all k alive."""
    kept: list[object] = []
    gc.collect()
    before = _rss()
    for _ in range(k):
        kept.append(load())
    gc.collect()
    per = (_rss() - before) / k / MIB
    del kept
    gc.collect()
    return per


def _instantiated(engine: wasmtime.Engine, component: Component) -> Any:
    linker = Linker(engine)
    linker.add_wasip2()
    linker.define_unknown_imports_as_traps(component)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_fuel(10**10)
    store.set_epoch_deadline(10**6)
    return component, store, linker.instantiate(store, component)


def rows(rounds: int = 2, k: int = 6) -> list[Row]:
    wasm, artifact = python_guest(ROOT / "examples" / "hello")
    engine = new_engine()
    with tempfile.TemporaryDirectory(prefix="bench-components-") as tmp:
        path = Path(tmp) / "hello.cwasm"
        path.write_bytes(artifact)
        Component.deserialize(engine, artifact)  # warm: page cache, lazy engine state
        Component.deserialize_file(engine, str(path))
        compile_ms: list[float] = []
        deser_ms: list[float] = []
        deser_file_ms: list[float] = []
        for _ in range(rounds):
            compile_ms.append(_timed(lambda: precompile(wasm, engine=engine)))
            deser_ms.append(_timed(lambda: Component.deserialize(engine, artifact)))
            deser_file_ms.append(_timed(lambda: Component.deserialize_file(engine, str(path))))
        per_bytes = _rss_per(lambda: Component.deserialize(engine, artifact), k)
        per_file = _rss_per(lambda: Component.deserialize_file(engine, str(path)), k)
        per_inst = _rss_per(lambda: _instantiated(engine, Component.deserialize_file(engine, str(path))), k)
    c, d, f = (statistics.median(v) for v in (compile_ms, deser_ms, deser_file_ms))
    art_mib, wasm_mib = len(artifact) / MIB, len(wasm) / MIB
    return [
        Row(f"Python sample: compile (precompile, {wasm_mib:.1f} MiB)", c, "ms", extra={"runs": compile_ms}),
        Row(
            "Python sample: Component.deserialize (bytes)",
            d,
            "ms",
            c,
            baseline_figure="compile",
            extra={"runs": deser_ms},
        ),
        Row(
            "Python sample: Component.deserialize_file (mmap)",
            f,
            "ms",
            c,
            baseline_figure="compile",
            extra={"runs": deser_file_ms},
        ),
        Row(
            "memory per loaded component, deserialize (bytes)",
            per_bytes,
            "MiB",
            art_mib,
            baseline_figure="artifact size",
            extra={"k": k},
        ),
        Row(
            "memory per loaded component, deserialize_file",
            per_file,
            "MiB",
            art_mib,
            baseline_figure="artifact size",
            extra={"k": k},
        ),
        Row(
            "memory per loaded component + 1 instance",
            per_inst,
            "MiB",
            art_mib,
            baseline_figure="artifact size",
            extra={"k": k},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.components")
    parser.add_argument("--rounds", type=int, default=2, help="compile/deserialize rounds")
    parser.add_argument("--loads", type=int, default=6, help="components kept loaded for the RSS figure")
    args = parser.parse_args()
    print(render(rows(args.rounds, args.loads)))


if __name__ == "__main__":
    main()
