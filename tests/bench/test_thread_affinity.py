"""bench.thread_affinity: it measures each configuration with the CPUs it names (pinned runs on one
CPU, unpinned on all), and puts the process back on every CPU afterwards. No timing is asserted."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from bench import thread_affinity


def test_pinned_runs_are_on_one_cpu_and_the_process_is_unpinned_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    every = frozenset(os.sched_getaffinity(0))
    seen: list[tuple[int, frozenset[int]]] = []
    real = thread_affinity._on_threads

    def spy(call: Callable[[], object], threads: int, calls: int) -> tuple[float, float]:
        seen.append((threads, frozenset(os.sched_getaffinity(0))))
        return real(call, threads, calls)

    monkeypatch.setattr(thread_affinity, "_on_threads", spy)
    rows, report = thread_affinity.run(calls=8, rounds=2)
    assert frozenset(os.sched_getaffinity(0)) == every
    assert len(seen) == 2 * 2 * len(thread_affinity.THREADS)
    for threads in thread_affinity.THREADS:
        cpus = [c for t, c in seen if t == threads]
        assert sorted(len(c) for c in cpus) == sorted([1, 1, len(every), len(every)])
    assert [r.figure for r in rows] == [
        f"runner C echo on {t} thread(s), CPU per call, pinned to one CPU" for t in thread_affinity.THREADS
    ]
    assert all(r.ratio is not None and r.ratio > 0 for r in rows)
    assert "pinned" in report
