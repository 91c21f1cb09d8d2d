"""`GET /v1/tenants/{tenant}/executions`: one tenant's calls as the gateway recorded them, newest first.

The rows are gateway telemetry (api/gateway/execlog.py writes execution_log), read here through
registry.read_operator. Like `GET /v1/debug-sessions`, reading them needs `installs:manage` (admin holds
it); a tenant token reads only its own tenant, any other gets 403 tenant_mismatch. Rows carry who called
and what the guest cost, never bodies, headers or tokens.

Paging is by keyset: pass the last `id` of a page as `before` to get the next, older one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.operator.deps import PoolDep
from api.operator.params import CheckParams
from registry import read_operator

router = APIRouter(tags=["executions"], dependencies=[CheckParams])


class ExecutionOut(BaseModel):
    id: int
    request_id: str
    extension: str
    version: str | None
    install_id: str | None
    method: str
    endpoint: str | None
    status: int
    outcome: str
    duration_ms: float
    fuel_consumed: int | None
    principal: str | None
    operator: bool
    at: datetime


@router.get("/tenants/{tenant}/executions", response_model=list[ExecutionOut])
async def list_executions(
    tenant: str,
    principal: PrincipalDep,
    pool: PoolDep,
    extension: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=read_operator.MAX_EXECUTIONS)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the last id of the previous page")
    ] = None,
) -> list[ExecutionOut]:
    """Calls of `tenant` (optionally to one extension), newest first; page with `before`."""
    principal.require("installs:manage")
    principal.require_tenant(tenant)
    rows = await read_operator.list_executions(
        pool, tenant, extension=extension, limit=limit, before_id=before
    )
    return [
        ExecutionOut(
            id=r.id,
            request_id=r.request_id,
            extension=r.extension,
            version=r.version,
            install_id=r.install_id,
            method=r.method,
            endpoint=r.endpoint,
            status=r.status,
            outcome=r.outcome,
            duration_ms=r.duration_ms,
            fuel_consumed=r.fuel_consumed,
            principal=r.principal,
            operator=r.operator,
            at=r.at,
        )
        for r in rows
    ]
