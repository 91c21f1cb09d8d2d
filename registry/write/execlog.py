"""One execution_log row for a call made by the control plane (a scheduled run), not the gateway.

The gateway writes its rows in batches (api/gateway/execlog.py); a scheduled run is one call per
workflow, so a plain INSERT keyed by its request id (the run's workflow run id) is enough, and a
retried activity that already wrote its row writes nothing more.
"""

from __future__ import annotations

import uuid

import asyncpg

from core.db import map_db_errors


async def record_execution(
    pool: asyncpg.Pool,
    *,
    request_id: str,
    tenant_id: str,
    extension_name: str,
    version: str | None,
    install_id: str | None,
    method: str,
    endpoint: str | None,
    status: int,
    outcome: str,
    duration_ms: float,
    principal: str,
    fuel_consumed: int | None,
) -> bool:
    """Insert the row unless one with this request id exists for the tenant; returns whether it did."""
    async with map_db_errors():
        inserted = await pool.fetchval(
            """INSERT INTO execution_log (request_id, tenant_id, extension_name, version, install_id,
                                          method, endpoint, status, outcome, duration_ms, principal,
                                          operator, fuel_consumed)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false, $12
               WHERE NOT EXISTS (SELECT 1 FROM execution_log WHERE tenant_id = $2 AND request_id = $1
                                 AND at > now() - interval '1 day')
               RETURNING id""",
            request_id,
            tenant_id,
            extension_name,
            version,
            uuid.UUID(install_id) if install_id else None,
            method,
            endpoint,
            status,
            outcome,
            duration_ms,
            principal,
            fuel_consumed,
        )
    return inserted is not None
