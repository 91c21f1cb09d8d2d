"""bench._interleave: the round-robin orders and the end-to-end ratio rows (no timing asserted)."""

from __future__ import annotations

import itertools

import pytest

from bench._interleave import (
    Floors,
    Result,
    alternate,
    e2e_rows,
    percentile,
    rotated,
    schedule,
    tolerable,
)


def test_rotated_starts_each_turn_one_item_later_and_wraps() -> None:
    assert rotated("abc", 0) == ["a", "b", "c"]
    assert rotated("abc", 1) == ["b", "c", "a"]
    assert rotated("abc", 5) == ["c", "a", "b"]
    assert rotated([], 3) == []


def test_schedule_runs_every_target_once_per_level_before_the_next_level() -> None:
    order = list(schedule(["bare", "star", "gw"], [1, 8, 32, 64]))
    assert [level for level, _ in order] == [1] * 3 + [8] * 3 + [32] * 3 + [64] * 3
    by_level = {level: [t for _, t in group] for level, group in itertools.groupby(order, key=lambda x: x[0])}
    assert by_level == {
        1: ["bare", "star", "gw"],
        8: ["star", "gw", "bare"],
        32: ["gw", "bare", "star"],
        64: ["bare", "star", "gw"],
    }


def test_alternate_calls_in_rotating_order_and_times_each_call_with_the_clock() -> None:
    calls: list[str] = []
    ticks = itertools.count()

    def clock() -> float:
        return float(next(ticks))

    timings = alternate([lambda: calls.append("a"), lambda: calls.append("b")], 3, clock)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert timings == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]  # two clock reads per call, one apart


def test_percentile_is_nearest_rank_and_refuses_an_empty_sample() -> None:
    sample = [float(v) for v in range(100, 0, -1)]
    assert percentile(sample, 0.5) == 51.0
    assert percentile(sample, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def test_e2e_rows_give_ratios_to_both_floors_and_latency_for_chosen_targets() -> None:
    floors = Floors(bare="bare", framework="star")
    results = {
        ("bare", 8): Result(10_000.0, 0.5, 1.0),
        ("star", 8): Result(8_000.0, 0.8, 2.0),
        ("runner", 8): Result(1_000.0, 5.0, 9.0),
        ("gw", 8): Result(400.0, 20.0, 40.0),
    }
    rows = e2e_rows(["bare", "star", "runner", "gw"], [8], results, floors, latency_of=lambda n: n == "gw")
    got = {(r.figure, r.baseline_figure): (r.value, r.baseline, r.ratio) for r in rows}
    assert got == {
        ("e2e bare, c=8", ""): (10_000.0, None, None),
        ("e2e star, c=8", "bare uvicorn"): (8_000.0, 10_000.0, 0.8),
        ("e2e runner, c=8", "bare uvicorn"): (1_000.0, 10_000.0, 0.1),
        ("e2e runner, c=8 (vs Starlette)", "uvicorn+Starlette"): (1_000.0, 8_000.0, 0.125),
        ("e2e gw, c=8", "bare uvicorn"): (400.0, 10_000.0, 0.04),
        ("e2e gw, c=8 (vs Starlette)", "uvicorn+Starlette"): (400.0, 8_000.0, 0.05),
        ("e2e gw, c=8, p50", "uvicorn+Starlette p50"): (20.0, 0.8, 25.0),
        ("e2e gw, c=8, p99", "uvicorn+Starlette p99"): (40.0, 2.0, 20.0),
    }
    assert len(rows) == len(got)  # no figure twice
    assert rows[0].extra == {"p50_ms": 0.5, "p99_ms": 1.0}


def test_e2e_rows_need_both_floors_at_each_level() -> None:
    with pytest.raises(KeyError):
        e2e_rows(["gw"], [1], {("gw", 1): Result(1.0, 1.0, 1.0)}, Floors(bare="bare", framework="star"))


def test_a_few_failed_answers_are_counted_more_than_one_percent_are_an_error() -> None:
    assert tolerable(0, 0) and tolerable(4, 1242) and tolerable(10, 1000)
    assert not tolerable(11, 1000) and not tolerable(1, 0)
    floors = Floors(bare="bare", framework="star")
    results = {("bare", 1): Result(10.0, 1.0, 1.0), ("star", 1): Result(5.0, 1.0, 1.0)}
    results[("gw", 1)] = Result(1.0, 1.0, 1.0, failed=3)
    rows = e2e_rows(["bare", "star", "gw"], [1], results, floors)
    assert [r.extra.get("failed") for r in rows] == [None, None, 3, 3, None, None]
