"""`GET /v1/audit`: every state change recorded by the control-plane workflows, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.operator import control
from api.operator.deps import PoolDep, SettingsDep
from api.operator.params import CheckParams
from registry import read

router = APIRouter(tags=["audit"], dependencies=[CheckParams])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    step: str
    tenant_id: str | None
    extension: str | None
    version: str | None
    content_hash: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    workflow_id: str
    run_id: str
    ui_url: str


@router.get("/audit", response_model=list[AuditOut])
async def list_audit(
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    tenant: Annotated[str | None, Query()] = None,
    extension: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Who changed what, when, in which workflow. Tenant tokens see only their tenant's events."""
    principal.require("installs:manage", "trust:manage")
    if principal.tenant_id is not None:
        principal.require_tenant(tenant or principal.tenant_id)
        tenant = principal.tenant_id
    events = await read.list_audit(pool, tenant_id=tenant, extension=extension, limit=limit)
    return [
        AuditOut(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            step=e.step,
            tenant_id=e.tenant_id,
            extension=e.extension_name,
            version=e.version,
            content_hash=e.content_hash,
            before=e.before,
            after=e.after,
            workflow_id=e.workflow_id,
            run_id=e.run_id,
            ui_url=control.ui_url(settings, e.workflow_id),
        )
        for e in events
    ]
