"""Orderings and ratios shared by the benches that compare a subject with its floors in one run.

Pure functions (no timing here): tests/bench/test_interleave.py checks them. The machine is shared
(2 cores, other sessions' tests), so a subject and its baseline must be measured alternately and with
a rotating first place: measuring all of one target and then the other would hand whichever ran
during a noisy minute a worse figure, and the first of a round always meets the coldest caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.report import Row

# A load run with more non-2xx answers than this share of its requests is an error, not a figure; a
# few (a shared 2-core machine under a saturating single-tenant load) are counted in the row instead.
FAILED_SHARE = 0.01

T = TypeVar("T")
L = TypeVar("L")


@dataclass
class Result:
    """One load run against one target: throughput and latency percentiles."""

    rps: float
    p50_ms: float
    p99_ms: float
    failed: int = 0  # non-2xx answers, tolerated up to FAILED_SHARE of the requests


def tolerable(failed: int, requests: int) -> bool:
    """Whether `failed` non-2xx answers out of `requests` still make a figure (see FAILED_SHARE)."""
    return failed <= FAILED_SHARE * requests


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """`items` starting at position `turn` (mod len), wrapping around: round `turn`'s order."""
    if not items:
        return []
    k = turn % len(items)
    return [*items[k:], *items[:k]]


def schedule(items: Sequence[T], levels: Sequence[L]) -> Iterator[tuple[L, T]]:
    """Round-robin: for each level in turn, every item once, each level starting one item later."""
    for turn, level in enumerate(levels):
        for item in rotated(items, turn):
            yield level, item


def alternate(
    fns: Sequence[Callable[[], object]], rounds: int, clock: Callable[[], float]
) -> list[list[float]]:
    """Call every function once per round (rotating who goes first), `clock` units per call each."""
    out: list[list[float]] = [[] for _ in fns]
    for turn in range(rounds):
        for index in rotated(range(len(fns)), turn):
            started = clock()
            fns[index]()
            out[index].append(clock() - started)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (q in [0, 1]) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Floors:
    """Which measured targets are the floors, by name: the bare ASGI app and the framework one."""

    bare: str
    framework: str
    bare_label: str = "bare uvicorn"
    framework_label: str = "uvicorn+Starlette"


def e2e_rows(
    names: Sequence[str],
    levels: Sequence[int],
    results: dict[tuple[str, int], Result],
    floors: Floors,
    *,
    latency_of: Callable[[str], bool] = lambda _name: True,
) -> list[Row]:
    """The end-to-end table rows, level by level.

    Per target and concurrency: req/s vs the bare floor; for every target that is not a floor also
    req/s vs the framework floor; and for targets where `latency_of(name)` the p50 and p99 in ms vs
    the framework floor's (the realistic lower bound of a Python web service's latency).
    """
    rows: list[Row] = []
    for conns in levels:
        bare = results[(floors.bare, conns)]
        framework = results[(floors.framework, conns)]
        for name in names:
            r = results[(name, conns)]
            extra: dict[str, float] = {"p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
            if r.failed:
                extra["failed"] = r.failed
            is_bare = name == floors.bare
            rows.append(
                Row(
                    f"e2e {name}, c={conns}",
                    r.rps,
                    "req/s",
                    None if is_bare else bare.rps,
                    baseline_figure="" if is_bare else floors.bare_label,
                    extra=extra,
                )
            )
            if name in (floors.bare, floors.framework):
                continue
            rows.append(
                Row(
                    f"e2e {name}, c={conns} (vs Starlette)",
                    r.rps,
                    "req/s",
                    framework.rps,
                    baseline_figure=floors.framework_label,
                    extra=extra,
                )
            )
            if not latency_of(name):
                continue
            for label, value, base in (
                ("p50", r.p50_ms, framework.p50_ms),
                ("p99", r.p99_ms, framework.p99_ms),
            ):
                rows.append(
                    Row(
                        f"e2e {name}, c={conns}, {label}",
                        value,
                        "ms",
                        base,
                        baseline_figure=f"{floors.framework_label} {label}",
                    )
                )
    return rows
