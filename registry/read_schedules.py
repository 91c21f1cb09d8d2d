"""Registry reads of scheduled invocations: the last run of each schedule (`GET .../schedules`).

Read-only. A scheduled run writes one execution_log row with principal `schedule:<name>`
(registry.write.execlog); the newest such row of (tenant, extension) is the schedule's last run. The
schedules themselves are not rows: the installed version's manifest declares them and Temporal holds
their state (schema.payloads.schedules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.db import map_db_errors

SCHEDULE_PRINCIPAL_PREFIX = "schedule:"


@dataclass(frozen=True, kw_only=True)
class LastRun:
    extension: str
    schedule: str
    at: datetime
    status: int
    outcome: str
    request_id: str


def schedule_principal(schedule: str) -> str:
    return f"{SCHEDULE_PRINCIPAL_PREFIX}{schedule}"


async def last_runs(
    pool: asyncpg.Pool, tenant_id: str, schedules: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], LastRun]:
    """The newest execution_log row of each (extension, schedule) in `tenant_id` that has one.

    One query: each pair walks the (tenant_id, extension_name, at DESC) index from the newest row and
    stops at its first `schedule:<name>` row (LIMIT 1 in a LATERAL), so a busy extension's gateway
    rows are read only back to the schedule's last run.
    """
    pairs = sorted(set(schedules))
    if not pairs:
        return {}
    async with map_db_errors():
        rows = await pool.fetch(
            """
            SELECT k.extension, k.schedule, r.at, r.status, r.outcome, r.request_id
            FROM unnest($2::text[], $3::text[]) AS k(extension, schedule)
            CROSS JOIN LATERAL (
                SELECT l.at, l.status, l.outcome, l.request_id
                FROM execution_log l
                WHERE l.tenant_id = $1 AND l.extension_name = k.extension
                  AND l.principal = $4 || k.schedule
                ORDER BY l.at DESC
                LIMIT 1
            ) r
            """,
            tenant_id,
            [e for e, _ in pairs],
            [s for _, s in pairs],
            SCHEDULE_PRINCIPAL_PREFIX,
        )
    return {
        (r["extension"], r["schedule"]): LastRun(
            extension=r["extension"],
            schedule=r["schedule"],
            at=r["at"],
            status=r["status"],
            outcome=r["outcome"],
            request_id=r["request_id"],
        )
        for r in rows
    }
