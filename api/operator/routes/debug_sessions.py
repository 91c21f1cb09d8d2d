"""`GET /v1/debug-sessions`: who watched which tenant's debug stream, when, and how it ended.

The rows are written by the gateway (api/gateway/debug_sessions.py) and read here through
registry.read_debug. Operators (`installs:manage`, or admin) see every tenant; a tenant token with
`installs:manage` sees only its own tenant's sessions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.operator.deps import PoolDep
from api.operator.params import CheckParams
from registry import read_debug

router = APIRouter(tags=["debug"], dependencies=[CheckParams])


class DebugSessionOut(BaseModel):
    id: str
    principal: str
    token_id: str | None
    operator: bool
    tenant_id: str
    extension: str
    install_id: str | None
    filters: dict[str, Any]
    transport: str
    request_id: str
    started_at: datetime
    ended_at: datetime | None
    events_sent: int
    end_reason: str | None


@router.get("/debug-sessions", response_model=list[DebugSessionOut])
async def list_debug_sessions(
    principal: PrincipalDep,
    pool: PoolDep,
    tenant: Annotated[str | None, Query()] = None,
    extension: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DebugSessionOut]:
    """Debug-stream viewing sessions, newest first."""
    principal.require("installs:manage")
    if principal.tenant_id is not None:
        principal.require_tenant(tenant or principal.tenant_id)
        tenant = principal.tenant_id
    rows = await read_debug.list_debug_sessions(pool, tenant_id=tenant, extension=extension, limit=limit)
    return [
        DebugSessionOut(
            id=r.id,
            principal=r.principal,
            token_id=r.token_id,
            operator=r.operator,
            tenant_id=r.tenant_id,
            extension=r.extension,
            install_id=r.install_id,
            filters=r.filters,
            transport=r.transport,
            request_id=r.request_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            events_sent=r.events_sent,
            end_reason=r.end_reason,
        )
        for r in rows
    ]
