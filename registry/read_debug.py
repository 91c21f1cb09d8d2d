"""Registry queries of the debug stream: who may watch an install, and the viewing-session audit.

Read-only. The gateway asks `debug_install` once per session start (not per event, not on the tenant
hot path); `list_debug_sessions` serves `GET /v1/debug-sessions`. The rows it lists are written by the
gateway (api/gateway/debug_sessions.py), like execution_log: telemetry, not registry state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from core.db import map_db_errors

DEBUG_CAPABILITY = "cap:debug.logs"


@dataclass(frozen=True, kw_only=True)
class DebugInstall:
    install_id: str
    tenant_id: str
    extension: str
    status: str
    granted_capabilities: tuple[str, ...]
    debug_enabled: bool  # the operator flag installs.debug_enabled

    @property
    def debuggable(self) -> bool:
        """The install grants cap:debug.logs (from its manifest), or an operator enabled debugging."""
        return DEBUG_CAPABILITY in self.granted_capabilities or self.debug_enabled


async def debug_install(pool: asyncpg.Pool, tenant_id: str, extension: str) -> DebugInstall | None:
    """The install of `extension` in `tenant_id` (any status); None when there is none.

    Tenant-scoped in SQL: `tenant_id` is always the caller's, never a value taken from the request.
    """
    async with map_db_errors():
        row = await pool.fetchrow(
            """SELECT i.id, i.tenant_id, e.name, i.status, i.granted_capabilities, i.debug_enabled
               FROM installs i JOIN extensions e ON e.id = i.extension_id
               WHERE i.tenant_id = $1 AND e.name = $2""",
            tenant_id,
            extension,
        )
    if row is None:
        return None
    return DebugInstall(
        install_id=str(row["id"]),
        tenant_id=row["tenant_id"],
        extension=row["name"],
        status=row["status"],
        granted_capabilities=tuple(row["granted_capabilities"]),
        debug_enabled=row["debug_enabled"],
    )


@dataclass(frozen=True, kw_only=True)
class DebugSession:
    id: str
    principal: str
    token_id: str | None
    operator: bool
    tenant_id: str
    extension: str
    install_id: str | None
    filters: dict[str, Any] = field(default_factory=dict)
    transport: str
    request_id: str
    started_at: datetime
    ended_at: datetime | None
    events_sent: int
    end_reason: str | None


async def list_debug_sessions(
    pool: asyncpg.Pool, *, tenant_id: str | None = None, extension: str | None = None, limit: int = 100
) -> list[DebugSession]:
    """Viewing sessions, newest first, optionally of one tenant and/or extension."""
    async with map_db_errors():
        rows = await pool.fetch(
            """SELECT id, principal, token_id, operator, tenant_id, extension_name, install_id, filters,
                      transport, request_id, started_at, ended_at, events_sent, end_reason
               FROM debug_sessions
               WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR extension_name = $2)
               ORDER BY started_at DESC, id LIMIT $3""",
            tenant_id,
            extension,
            limit,
        )
    return [
        DebugSession(
            id=str(r["id"]),
            principal=r["principal"],
            token_id=str(r["token_id"]) if r["token_id"] is not None else None,
            operator=r["operator"],
            tenant_id=r["tenant_id"],
            extension=r["extension_name"],
            install_id=str(r["install_id"]) if r["install_id"] is not None else None,
            filters=_json(r["filters"]),
            transport=r["transport"],
            request_id=r["request_id"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            events_sent=r["events_sent"],
            end_reason=r["end_reason"],
        )
        for r in rows
    ]


def _json(value: Any) -> dict[str, Any]:
    # The pool may or may not have a jsonb codec (core.db); accept both shapes.
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}
