"""Audit rows, one per (workflow id, run id, step)."""

from __future__ import annotations

from typing import Any

import asyncpg

from core.db import map_db_errors


async def insert_audit_event(
    pool: asyncpg.Pool,
    *,
    workflow_id: str,
    run_id: str,
    step: str,
    actor: str,
    action: str,
    tenant_id: str | None = None,
    extension_name: str | None = None,
    version: str | None = None,
    content_hash: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> bool:
    """Insert the row unless it exists; returns whether it was inserted now."""
    async with map_db_errors():
        inserted = await pool.fetchval(
            """INSERT INTO audit_events (workflow_id, run_id, step, actor, action, tenant_id,
                                         extension_name, version, content_hash, before, after)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               ON CONFLICT (workflow_id, run_id, step) DO NOTHING RETURNING id""",
            workflow_id,
            run_id,
            step,
            actor,
            action,
            tenant_id,
            extension_name,
            version,
            content_hash,
            before,
            after,
        )
    return inserted is not None
