"""Pinning a process to CPUs (`EXT_CPUS`, Linux CPU-list syntax: "0", "0-3", "0,2-3").

Why: a runner's guest threads hand the GIL to each other several times per call (every wasmtime C
call releases it). Between threads on different CPUs each hand-off is a cross-CPU wake-up, and
bench/gateway.py measured a cheap call costing about three times the CPU it costs when the process's
threads share one CPU (docs/performance.md). One runner process per CPU, each pinned, is the fast
layout; the gateway spreads calls over them (EXT_RUNNER_URL).
"""

from __future__ import annotations

import os
from pathlib import Path


def parse_cpus(text: str) -> frozenset[int]:
    """The CPUs a CPU list names; ValueError (saying what is wrong) for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        item = part.strip()
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{item!r} is not a CPU number or range (a CPU list looks like 0,2-3)")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"the range {item!r} ends before it starts")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def format_cpus(cpus: frozenset[int] | set[int]) -> str:
    """A CPU list in its shortest form: {0, 1, 2, 5} -> "0-2,5"."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and cpu == int(ranges[-1].rpartition("-")[2]) + 1:
            ranges[-1] = f"{ranges[-1].partition('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def usable(cpus: frozenset[int]) -> frozenset[int]:
    """`cpus`, checked against the CPUs this process may run on (ValueError naming the others)."""
    if not hasattr(os, "sched_getaffinity"):
        raise ValueError("pinning to CPUs needs Linux (sched_setaffinity); leave it empty here")
    allowed = os.sched_getaffinity(0)
    outside = cpus - allowed
    if outside:
        may = format_cpus(allowed)
        raise ValueError(f"CPU {format_cpus(outside)} is not one this process may run on (it may use {may})")
    return cpus


def pin_process(cpus: frozenset[int]) -> None:
    """Run this process, every thread it has and every thread it starts later, on `cpus` only."""
    os.sched_setaffinity(0, cpus)  # this thread, and the threads it starts from now on
    for task in Path("/proc/self/task").iterdir():  # threads started before (imports, loggers)
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            pass  # the thread ended meanwhile
