"""Registry reads of fleet rollouts (activities/rollout.py): which installs to move, and how a wave's
installs behaved on the new version against their old one (execution_log, written by the gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from core.db import map_db_errors

# Outcomes that say the version misbehaved. policy_denied and rate_limited are the gateway refusing a
# call before or around the guest, whatever its version, so they do not count against it.
ERROR_OUTCOMES = ("handler_error", "timeout", "upstream_error", "error")


@dataclass(frozen=True, kw_only=True)
class Candidate:
    tenant_id: str
    install_id: str
    version: str


async def rollout_candidates(
    pool: asyncpg.Pool, extension: str, version: str, tenants: list[str] | None
) -> list[Candidate]:
    """Active installs of `extension` at another version than `version`, in `tenants` (None: all),
    in a stable order (tenant id) so the waves are the same whoever computes them."""
    async with map_db_errors():
        rows = await pool.fetch(
            """
            SELECT i.tenant_id, i.id, v.version
            FROM installs i
            JOIN extensions e ON e.id = i.extension_id
            JOIN versions v ON v.id = i.version_id
            WHERE e.name = $1 AND v.version <> $2 AND i.status = 'active'
              AND ($3::text[] IS NULL OR i.tenant_id = ANY($3::text[]))
            ORDER BY i.tenant_id
            """,
            extension,
            version,
            tenants,
        )
    return [Candidate(tenant_id=r["tenant_id"], install_id=str(r["id"]), version=r["version"]) for r in rows]


@dataclass(frozen=True, kw_only=True)
class CallStats:
    calls: int
    errors: int
    p99_ms: float


_STATS = """
SELECT count(*) AS calls,
       count(*) FILTER (WHERE l.outcome = ANY($4::text[])) AS errors,
       COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY l.duration_ms), 0) AS p99
FROM execution_log l
JOIN unnest($2::uuid[], $3::text[]) AS t(install_id, version) ON t.install_id = l.install_id
WHERE l.extension_name = $1 AND l.version = t.version AND l.at >= $5 AND l.at < $6
"""


async def wave_call_stats(
    pool: asyncpg.Pool, extension: str, version: str, installs: list[tuple[str, str]], since: datetime
) -> tuple[CallStats, CallStats]:
    """(new, old) call stats of `installs` ((install id, old version) pairs): their calls on `version`
    from `since` until now, and their calls on their old version in the window of equal length just
    before `since`. Served by the index execution_log_extension_install_at (migration 0008)."""
    ids = [i for i, _ in installs]
    async with map_db_errors():
        now: datetime = await pool.fetchval("SELECT now()")
        before = since - max(now - since, timedelta(0))
        outcomes = list(ERROR_OUTCOMES)
        new = await pool.fetchrow(_STATS, extension, ids, [version] * len(ids), outcomes, since, now)
        old = await pool.fetchrow(_STATS, extension, ids, [v for _, v in installs], outcomes, before, since)
    return _stats(new), _stats(old)


def _stats(row: asyncpg.Record | None) -> CallStats:
    if row is None:
        return CallStats(calls=0, errors=0, p99_ms=0.0)
    return CallStats(calls=int(row["calls"]), errors=int(row["errors"]), p99_ms=float(row["p99"]))
