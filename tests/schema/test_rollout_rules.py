"""Wave sizes and the regression check of a rollout (schema.rollout)."""

from __future__ import annotations

import pytest

from schema.payloads.rollout import RolloutThresholds, WaveMetrics
from schema.rollout import check_waves, regression, wave_bounds


@pytest.mark.parametrize(
    ("specs", "total", "bounds"),
    [
        (["1", "10", "50%"], 200, [1, 10, 100, 200]),
        (["1", "10", "50%"], 4, [1, 4]),
        (["1", "2", "50%"], 10, [1, 2, 5, 10]),
        (["1%", "100%"], 5, [1, 5]),
        (["5", "5", "100%"], 8, [5, 8]),
        (["1"], 0, []),
        (["300"], 3, [3]),
    ],
)
def test_wave_bounds_are_cumulative_and_end_at_every_install(
    specs: list[str], total: int, bounds: list[int]
) -> None:
    assert wave_bounds(specs, total) == bounds


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        ([], "at least one wave"),
        (["0"], ">= 1"),
        (["10", "5"], "non-decreasing"),
        (["50%", "20%"], "non-decreasing"),
        (["150%"], "(0, 100]"),
        (["ten"], "neither a count"),
        (["1"] * 21, "at most 20"),
    ],
)
def test_bad_waves_are_named(specs: list[str], problem: str) -> None:
    assert problem in check_waves(specs)


def test_good_waves_pass() -> None:
    assert check_waves(["1", "10", "50%"]) == ""


TH = RolloutThresholds()


def test_error_rate_rise_beyond_the_allowance_regresses() -> None:
    m = WaveMetrics(new_calls=100, new_errors=5, old_calls=100, old_errors=2)
    assert regression(m, TH).startswith("error rate 5.00%")
    assert regression(WaveMetrics(new_calls=100, new_errors=3, old_calls=100, old_errors=2), TH) == ""


def test_p99_ratio_beyond_the_allowance_regresses() -> None:
    m = WaveMetrics(new_calls=10, new_p99_ms=16.0, old_calls=10, old_p99_ms=10.0)
    assert regression(m, TH).startswith("p99 16.0 ms")
    assert regression(WaveMetrics(new_calls=10, new_p99_ms=15.0, old_calls=10, old_p99_ms=10.0), TH) == ""


def test_too_few_calls_is_no_evidence() -> None:
    m = WaveMetrics(new_calls=4, new_errors=4)
    assert regression(m, RolloutThresholds(min_calls=5)) == ""
    assert regression(m, RolloutThresholds(min_calls=4)) != ""
