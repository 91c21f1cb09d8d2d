"""Manifest schedules: the cron subset, the shortest interval a cron fires at, what a manifest may
schedule, and the rules between versions and operator limits (schema.cron, schema.schedules)."""

from __future__ import annotations

from typing import Any

import pytest

from schema.cron import CronError, parse_cron
from schema.manifest import ManifestError, parse_manifest
from schema.schedules import SchedulePolicy, check_limits, declared, dropped_schedules


@pytest.mark.parametrize(
    ("cron", "minutes"),
    [
        ("*/5 * * * *", 5),
        ("*/7 * * * *", 4),  # :56 to the next hour's :00
        ("0 3 * * *", 1440),
        ("0,30 9-17 * * 1-5", 30),
        ("0 */6 * * *", 360),
        ("59 23 * * *", 1440),
        ("0,1 0 * * *", 1),
        ("15 * * * *", 60),
        ("0 0 1 * *", 1440),  # monthly: at least a day, the bound is safe
        ("0-10/5 8 * * *", 5),
    ],
)
def test_min_interval(cron: str, minutes: int) -> None:
    assert parse_cron(cron).min_interval_minutes() == minutes


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 3 * *", "five fields"),
        ("0 3 * * * *", "five fields"),
        ("0  3 * * *", "five fields"),
        ("60 * * * *", "minute field: 60 is outside 0-59"),
        ("0 24 * * *", "hour field: 24"),
        ("0 0 0 * *", "day-of-month field: 0"),
        ("0 0 * 13 *", "month field: 13"),
        ("0 0 * * 7", "day-of-week field: 7"),
        ("0 0 * * MON", "may use only digits"),
        ("@daily", "five fields"),
        ("5/15 * * * *", "write a range, e.g. 5-59/15"),
        ("10-5 * * * *", "runs backwards"),
        ("*/0 * * * *", "is outside"),
        ("0,,5 * * * *", "empty list entry"),
        ("0 0 1 * 1", "both day-of-month and day-of-week"),
        ("0 " * 70, "longer than 128"),
    ],
)
def test_bad_cron_is_named(cron: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        parse_cron(cron)


def _doc(schedules: list[dict[str, Any]], endpoints: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    eps = endpoints or [("POST", "/sync"), ("GET", "/status"), ("GET", "/items/:id")]
    return {
        "name": "com.acme.sched",
        "publisher": "acme",
        "version": "1.0.0",
        "runtime": "wasm-component@1",
        "api": {"endpoints": [{"method": m, "path": p} for m, p in eps]},
        "schedules": schedules,
    }


def test_a_manifest_schedule_parses() -> None:
    m = parse_manifest(
        _doc([{"name": "nightly", "cron": "0 3 * * *", "endpoint": "POST /sync", "body": [1]}])
    )
    (s,) = m.schedules
    assert (s.name, s.method, s.path, s.body) == ("nightly", "POST", "/sync", [1])
    assert declared(m.model_dump(mode="json"))[0].path == "/sync"


@pytest.mark.parametrize(
    ("schedule", "issue"),
    [
        (
            {"name": "n", "cron": "0 3 * * *", "endpoint": "POST /nope"},
            "schedules[0].endpoint: POST /nope is not",
        ),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "GET /items/:id"}, "without ':params'"),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "PUT /sync"}, "must be 'GET /path' or 'POST /path'"),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "/sync"}, "must be 'GET /path' or 'POST /path'"),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "GET /status", "body": {}}, "schedules[0].body"),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "POST /sync", "body": "x"}, "schedules[0].body"),
        ({"name": "n", "cron": "* * *", "endpoint": "POST /sync"}, "schedules[0].cron: must have five"),
        ({"name": "Nightly", "cron": "0 3 * * *", "endpoint": "POST /sync"}, "schedules[0].name: must be"),
        ({"name": "n", "cron": "0 3 * * *", "endpoint": "POST /sync", "at": 1}, "schedules[0].at: unknown"),
        (
            {"name": "n", "cron": "0 3 * * *", "endpoint": "POST /sync", "body": {"x": "y" * 100_001}},
            "longer than 100000",
        ),
    ],
)
def test_a_bad_schedule_names_its_field(schedule: dict[str, Any], issue: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(_doc([schedule]))
    assert issue in str(info.value)


def test_schedule_names_are_unique_and_at_most_fifty() -> None:
    twice = [{"name": "n", "cron": "0 3 * * *", "endpoint": "POST /sync"}] * 2
    with pytest.raises(ManifestError, match=r"schedules\[1\].name: repeats"):
        parse_manifest(_doc(twice))
    many = [{"name": f"s{i}", "cron": "0 3 * * *", "endpoint": "POST /sync"} for i in range(51)]
    with pytest.raises(ManifestError, match="schedules"):
        parse_manifest(_doc(many))


def test_dropped_schedules_are_those_whose_endpoint_is_gone() -> None:
    current = _doc(
        [
            {"name": "a", "cron": "0 3 * * *", "endpoint": "POST /sync"},
            {"name": "b", "cron": "0 4 * * *", "endpoint": "GET /status"},
        ]
    )
    target = _doc([], endpoints=[("GET", "/status")])
    assert dropped_schedules(current, target) == ["a"]
    assert dropped_schedules(current, current) == []


def test_limits() -> None:
    doc = _doc(
        [
            {"name": "a", "cron": "*/10 * * * *", "endpoint": "POST /sync"},
            {"name": "b", "cron": "0 4 * * *", "endpoint": "GET /status"},
        ]
    )
    mine = declared(doc)
    assert (
        check_limits(mine, policy=SchedulePolicy(min_interval_s=600, max_per_tenant=2), others_in_tenant=0)
        is None
    )
    fast = check_limits(mine, policy=SchedulePolicy(min_interval_s=601), others_in_tenant=0)
    assert fast is not None and fast.details == {
        "schedule": "a",
        "interval_minutes": 10,
        "min_interval_minutes": 11,
    }
    full = check_limits(mine, policy=SchedulePolicy(max_per_tenant=3), others_in_tenant=2)
    assert full is not None and full.details == {"schedules": 4, "max_per_tenant": 3}
    # A version without schedules never breaks the count, even in a tenant already over it.
    assert check_limits([], policy=SchedulePolicy(max_per_tenant=0), others_in_tenant=9) is None
