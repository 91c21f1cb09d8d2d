"""The rules of manifest schedules that depend on more than one manifest: pure, no I/O.

* `SchedulePolicy` holds the operator limits (worker settings EXT_SCHEDULE_MIN_INTERVAL_S and
  EXT_SCHEDULE_MAX_PER_TENANT). They are checked when a version is installed, upgraded or rolled back
  to, inside the registry transaction, so no install ever runs a schedule the operator forbids.
* `dropped_schedules`: an upgrade or rollback that removes an endpoint a current schedule calls would
  silently stop that job. It is refused (schedule_endpoint_dropped) unless the operator names those
  schedules in `drop_schedules`. A schedule the target no longer declares while still declaring its
  endpoint is the author's choice and goes without asking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schema.cron import parse_cron

DEFAULT_MIN_INTERVAL_S = 300
DEFAULT_MAX_PER_TENANT = 100


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    min_interval_s: int = DEFAULT_MIN_INTERVAL_S
    max_per_tenant: int = DEFAULT_MAX_PER_TENANT


@dataclass(frozen=True, slots=True)
class DeclaredSchedule:
    """A manifest schedule as stored (the version's manifest JSON)."""

    name: str
    cron: str
    method: str
    path: str
    body: Any = None


def declared(manifest: Mapping[str, Any] | None) -> list[DeclaredSchedule]:
    """The schedules of a stored (already validated) manifest, in manifest order."""
    out: list[DeclaredSchedule] = []
    for entry in (manifest or {}).get("schedules") or []:
        method, _, path = str(entry["endpoint"]).partition(" ")
        out.append(
            DeclaredSchedule(
                name=str(entry["name"]),
                cron=str(entry["cron"]),
                method=method,
                path=path,
                body=entry.get("body"),
            )
        )
    return out


def endpoints(manifest: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    api = (manifest or {}).get("api") or {}
    return {(str(e["method"]), str(e["path"])) for e in api.get("endpoints") or []}


def dropped_schedules(current: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """Names of the current version's schedules whose endpoint the target version does not declare."""
    kept = endpoints(target)
    return sorted(s.name for s in declared(current) if (s.method, s.path) not in kept)


@dataclass(frozen=True, slots=True)
class LimitBreach:
    message: str
    details: dict[str, Any]


def check_limits(
    schedules: Iterable[DeclaredSchedule], *, policy: SchedulePolicy, others_in_tenant: int
) -> LimitBreach | None:
    """The first operator limit `schedules` (one install's) break, with `others_in_tenant` schedules
    of the tenant's other installs; None when they fit."""
    listed = list(schedules)
    min_minutes = -(-policy.min_interval_s // 60)  # cron has minute granularity: round up
    for s in listed:
        every = parse_cron(s.cron).min_interval_minutes()
        if every < min_minutes:
            return LimitBreach(
                f"schedule {s.name!r} ({s.cron!r}) can run every {every} min; "
                f"this deployment allows at most one run per {min_minutes} min",
                {"schedule": s.name, "interval_minutes": every, "min_interval_minutes": min_minutes},
            )
    total = others_in_tenant + len(listed)
    if listed and total > policy.max_per_tenant:
        return LimitBreach(
            f"the tenant would have {total} schedules; this deployment allows {policy.max_per_tenant}",
            {"schedules": total, "max_per_tenant": policy.max_per_tenant},
        )
    return None
