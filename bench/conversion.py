"""Component value conversion, the runner's vs wasmtime-py's own: `python -m bench.conversion [--rounds N]`.

`Runtime.run` of the C echo component (tests/runner/fixtures/echo.wasm, POST with the body "hello",
a fresh Store per call, as in production) in three variants, swapped in call by call in this process
with a rotating first place (bench/_interleave.py), so all three see the same machine load:

* upstream: wasmtime-py 50's own string and record conversion (runner/_adapter.py patches 4 and 5
  swapped out) and its owned lowering of the request;
* patched: patches 4 (one copy per string) and 5 (leaner string and record conversion), the request
  lowered and the response lifted through them;
* packed: the request packed and the response read by runner/_packed.py (patch 6): what the runner
  runs.

Figures: p50 and mean per variant in µs, and each variant / upstream (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench._interleave import alternate, percentile
from bench.report import Row
from bench.runner import echo_bench
from runner import _adapter
from schema.envelope import ExecuteRequest
from tests.runner.runner_helpers import envelope

VARIANTS = ("upstream", "patched", "packed")


def measure(rounds: int, warmup: int = 200) -> dict[str, list[float]]:
    """µs per call of each variant, `rounds` calls each, alternated."""
    with echo_bench("bench-conversion-") as (bench, chash, _wasm):
        env = ExecuteRequest.model_validate(envelope(chash, "/x", method="POST", body=b"hello"))
        loaded = bench.cache().get(chash, artifacts=env.artifacts)
        bench.runtime.run(loaded, env, bench.sink)  # reads the handler's signature once

        def variant(upstream: bool, owned: bool) -> Callable[[], object]:
            def call() -> object:
                _adapter.use_upstream_conversions(upstream)
                loaded.signature.force_owned(owned)
                out = bench.runtime.run(loaded, env, bench.sink)
                if out.error is not None or out.body != b"hello":
                    raise RuntimeError(f"the echo answered {out.error or out.body!r}")
                return out

            return call

        # The switch itself (two attribute writes per call) is inside every variant's time alike.
        workloads = [variant(True, True), variant(False, True), variant(False, False)]
        try:
            alternate(workloads, warmup, time.perf_counter)
            samples = alternate(workloads, rounds, time.perf_counter)
        finally:
            _adapter.use_upstream_conversions(False)
    return {name: [s * 1e6 for s in sample] for name, sample in zip(VARIANTS, samples, strict=True)}


def summarize(us: dict[str, list[float]]) -> list[Row]:
    """Per variant: p50 and mean against upstream's."""
    rows = []
    for name in VARIANTS[1:]:
        for stat, fn in (("p50", lambda v: percentile(v, 0.5)), ("mean", statistics.fmean)):
            rows.append(
                Row(
                    f"Runtime.run C echo, {name} conversion ({stat})",
                    fn(us[name]),
                    "µs",
                    fn(us["upstream"]),
                    baseline_figure=f"wasmtime-py's own conversion {stat}",
                    extra={"n": len(us[name])},
                )
            )
    return rows


def rows(rounds: int = 4000) -> list[Row]:
    """The figures of this module, for `python -m bench`."""
    return summarize(measure(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.conversion")
    parser.add_argument("--rounds", type=int, default=4000, help="calls of each variant, alternated")
    args = parser.parse_args()
    for r in summarize(measure(args.rounds)):
        print(f"  {r.figure:<52} {r.value:>7,.1f} µs   upstream {r.baseline:>7,.1f} µs   x{r.ratio:.3f}")
    print(f"  ({args.rounds} calls each, alternated call by call)")


if __name__ == "__main__":
    main()
