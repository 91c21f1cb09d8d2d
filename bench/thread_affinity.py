"""Guest threads on one CPU vs on every CPU: `python -m bench.thread_affinity [--calls N] [--rounds R]`.

`Runtime.run` of the C echo component (fresh Store per call, as in production) on 1, 2 and 4 threads
of this process, each configuration twice per round: with the process allowed every CPU it has
(unpinned), and pinned to one CPU (core.affinity, as EXT_CPUS pins a runner). The order of the two
swaps every round, so the machine's load lands on both. Figures: calls/s and CPU µs per call (this
process's user + system time, all threads) per configuration, and pinned / unpinned.

Why it matters (docs/performance.md): every wasmtime C call releases the GIL, so threads of one runner
hand it to each other several times per call; across CPUs each hand-off is a cross-CPU wake-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable

from bench.report import Row
from bench.runner import echo_bench
from core.affinity import format_cpus, pin_process

THREADS = (1, 2, 4)


def _on_threads(call: Callable[[], object], threads: int, calls: int) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of `calls` calls spread over `threads` new threads."""
    per = calls // threads

    def work() -> None:
        for _ in range(per):
            call()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    done = per * threads
    return done / wall, cpu / done * 1e6


def measure(calls: int, rounds: int) -> dict[tuple[int, bool], list[tuple[float, float]]]:
    """(threads, pinned) -> one (calls/s, CPU µs/call) per round."""
    every = frozenset(os.sched_getaffinity(0))
    one = frozenset({max(every)})
    out: dict[tuple[int, bool], list[tuple[float, float]]] = {}
    with echo_bench("bench-affinity-") as (bench, chash, _wasm):
        call = bench.via_runner(chash, "/echo")
        for _ in range(200):
            call()
        try:
            for r in range(rounds):
                for threads in THREADS:
                    for pinned in (r % 2 == 0, r % 2 == 1):
                        # The worker threads start after this, so they inherit it (and the epoch
                        # ticker, already running, is moved with the rest of the process).
                        pin_process(one if pinned else every)
                        out.setdefault((threads, pinned), []).append(_on_threads(call, threads, calls))
        finally:
            pin_process(every)
    return out


def _median(values: list[tuple[float, float]], i: int) -> float:
    return statistics.median(v[i] for v in values)


def run(calls: int = 3000, rounds: int = 3) -> tuple[list[Row], str]:
    every = os.sched_getaffinity(0)
    measured = measure(calls, rounds)
    lines = [
        f"Runtime.run of the C echo on N threads, {calls} calls per run, {rounds} rounds, medians; "
        f"unpinned = CPUs {format_cpus(set(every))}, pinned = CPU {max(every)}",
        f"{'threads':>7} {'unpinned calls/s':>17} {'CPU µs/call':>12} {'pinned calls/s':>15} "
        f"{'CPU µs/call':>12} {'CPU pinned/unpinned':>20}",
    ]
    rows: list[Row] = []
    for threads in THREADS:
        free, pinned = measured[(threads, False)], measured[(threads, True)]
        free_cpu, pin_cpu = _median(free, 1), _median(pinned, 1)
        lines.append(
            f"{threads:>7} {_median(free, 0):>17,.0f} {free_cpu:>12.1f} {_median(pinned, 0):>15,.0f} "
            f"{pin_cpu:>12.1f} {pin_cpu / free_cpu:>19.2f}x"
        )
        rows.append(
            Row(
                f"runner C echo on {threads} thread(s), CPU per call, pinned to one CPU",
                pin_cpu,
                "µs",
                baseline=free_cpu,
                baseline_figure=f"the same on every CPU ({format_cpus(set(every))})",
                extra={
                    "calls_per_s_pinned": _median(pinned, 0),
                    "calls_per_s_unpinned": _median(free, 0),
                    "rounds": rounds,
                    "calls": calls,
                },
            )
        )
    return rows, "\n".join(lines)


def rows(calls: int = 3000, rounds: int = 3) -> list[Row]:
    """The figures of this module, for `python -m bench`."""
    return run(calls, rounds)[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.thread_affinity")
    parser.add_argument("--calls", type=int, default=3000, help="calls per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(run(args.calls, args.rounds)[1])


if __name__ == "__main__":
    main()
