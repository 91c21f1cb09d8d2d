"""Runner per-call cost vs the Extism Python SDK: `python -m bench.extism_compare [--rounds N]`.

Both sides do what a production host does for one request, in this process, alternated call by call
with a rotating first place (bench/_interleave.py), so both see the same machine load:

* ours: `Runtime.run` of the C echo component (tests/runner/fixtures/echo.wasm) from the runner's
  ComponentCache — a fresh wasmtime Store + instantiate + one `handler` call per request, fuel and
  epoch deadline set, the request record built from an execute envelope (bench/runner.py's
  `via_runner`, POST with the 5-byte body "hello");
* Extism (extism==1.1.1, libextism from the extism-sys wheel): a fresh `Plugin` per call from one
  cached `CompiledPlugin` (Extism's own instantiate-per-request path), `call("echo", b"hello")`, then
  the plugin freed. The plugin is ECHO_WAT below, compiled here with `wasmtime.wat2wasm`: a core
  module that copies its input to its output through Extism's kernel imports (`extism:host/env`
  input_length / input_load_u64 / input_load_u8 / alloc / store_u64 / store_u8 / output_set), no WASI,
  no host functions, no fuel limit.

A third workload, alternated with the two, separates the runner's own code from wasmtime-py: the same
component instantiated and called with bare wasmtime-py (bench/runner.py's `bare_component`: same
Engine, fresh Store, fuel and epoch deadline, a prebuilt request record, no runner code).

Figures: per-call p50 / p99 / mean in µs and ours / Extism (the goal is <= 0.75x), and the bare
wasmtime-py floor / Extism at p50. When extism is not installed the module says so and returns no
figure.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime.component import Component

from bench._interleave import alternate, percentile
from bench.report import Row
from bench.runner import bare_component, echo_bench

EXTISM_PIN = "extism==1.1.1"
GOAL = 0.75  # ours / Extism per call (issue 14)
INPUT = b"hello"  # the body bench.runner's envelope carries

# An echo plugin in Extism's calling convention: the export takes no argument and returns 0 on
# success; input and output live in the kernel's memory, reached only through the kernel imports
# (signatures as in Extism's PDKs: pointers and lengths are i64, bytes travel as i32).
ECHO_WAT = """
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "echo") (result i32)
    (local $len i64) (local $out i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $out (call $alloc (local.get $len)))
    ;; whole 8-byte words first, then the tail byte by byte
    (block $words_done
      (loop $words
        (br_if $words_done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
        (call $store_u64 (i64.add (local.get $out) (local.get $i)) (call $input_load_u64 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 8)))
        (br $words)))
    (block $bytes_done
      (loop $bytes
        (br_if $bytes_done (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $out) (local.get $i)) (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $bytes)))
    (call $output_set (local.get $out) (local.get $len))
    (i32.const 0)))
"""


def echo_plugin_wasm() -> bytes:
    """ECHO_WAT as a wasm binary (cffi wants bytes, wat2wasm returns a bytearray)."""
    return bytes(wasmtime.wat2wasm(ECHO_WAT))


def load_extism() -> Any | None:
    """The `extism.extism` module (CompiledPlugin is not re-exported by the package), or None."""
    try:
        return importlib.import_module("extism.extism")
    except ImportError:
        return None


def extism_call(sdk: Any) -> Callable[[], object]:
    """One request the Extism way: a fresh Plugin from the cached CompiledPlugin, one call, freed."""
    compiled = sdk.CompiledPlugin(echo_plugin_wasm(), wasi=False, functions=[])

    def call() -> object:
        with sdk.Plugin(compiled, functions=[]) as plugin:
            out = plugin.call("echo", INPUT)
        if out != INPUT:
            raise RuntimeError(f"Extism echo answered {out!r}")
        return out

    return call  # the closure holds `compiled`: it lives as long as the workload


def measure(rounds: int, warmup: int = 200) -> tuple[list[float], list[float], list[float], str]:
    """(ours, Extism, bare wasmtime-py: µs per call each; Extism version); raises without extism."""
    sdk = load_extism()
    if sdk is None:
        raise ModuleNotFoundError(f"extism is not installed (pip install {EXTISM_PIN})")
    with echo_bench("bench-extism-") as (bench, chash, wasm):
        engine = bench.runtime.engine
        workloads = [
            bench.via_runner(chash, "/x"),
            extism_call(sdk),
            bare_component(engine, Component(engine, wasm), wasi=False),
        ]
        alternate(workloads, warmup, time.perf_counter)
        ours_s, theirs_s, bare_s = alternate(workloads, rounds, time.perf_counter)
    us = [[s * 1e6 for s in sample] for sample in (ours_s, theirs_s, bare_s)]
    return us[0], us[1], us[2], sdk.extism_version()


def summarize(ours: list[float], theirs: list[float], bare: list[float], version: str) -> list[Row]:
    """The table rows: ours vs Extism at p50, p99 and mean; the bare wasmtime-py floor vs Extism."""
    label = f"Extism {version} Plugin(compiled)+call"
    rows = []
    for stat, fn in (
        ("p50", lambda v: percentile(v, 0.5)),
        ("p99", lambda v: percentile(v, 0.99)),
        ("mean", statistics.fmean),
    ):
        rows.append(
            Row(
                f"runner Runtime.run, C echo, fresh Store per call ({stat})",
                fn(ours),
                "µs",
                fn(theirs),
                baseline_figure=f"{label} {stat}",
                extra={"n": len(ours), "goal_ratio": GOAL},
            )
        )
    rows.append(
        Row(
            "bare wasmtime-py, C echo component, fresh Store per call (p50)",
            percentile(bare, 0.5),
            "µs",
            percentile(theirs, 0.5),
            baseline_figure=f"{label} p50",
            extra={"n": len(bare), "p99_us": percentile(bare, 0.99)},
        )
    )
    return rows


def rows(rounds: int = 5000) -> list[Row]:
    """The figures of this module, for `python -m bench`; none (and a message) without extism."""
    if load_extism() is None:
        print(
            f"bench.extism_compare skipped: extism is not installed (pip install {EXTISM_PIN}; "
            "it is in the [dev] extra)",
            file=sys.stderr,
        )
        return []
    return summarize(*measure(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extism_compare")
    parser.add_argument("--rounds", type=int, default=5000, help="calls of each side, alternated")
    args = parser.parse_args()
    if load_extism() is None:
        sys.exit(f"extism is not installed: pip install {EXTISM_PIN}")
    for r in summarize(*measure(args.rounds)):
        print(f"  {r.figure:<64} {r.value:>8,.0f} µs   Extism {r.baseline:>8,.0f} µs   x{r.ratio:.3f}")
    print(f"  ({args.rounds} calls each, alternated; goal ours/Extism <= {GOAL}x)")


if __name__ == "__main__":
    main()
