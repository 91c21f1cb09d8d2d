"""`GET /v1/audit`: every state change recorded by the control-plane workflows, newest first.

Filters (all optional, combined with AND): `tenant`, `extension` (exact), `since` (an ISO-8601
timestamp *with* a time zone, inclusive: `2026-01-01T00:00:00Z`, `...+02:00`), `action` (an exact
action name such as `upgrade`, or a prefix ending in `*`: `install*` matches install, install_noop,
install_rejected and install_quarantined), `limit`. A malformed value is `400 invalid_request` naming
the parameter, never quoting it. Relative times (`--since 1h`) are the CLI's: it sends a timestamp.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.operator import control
from api.operator.deps import PoolDep, SettingsDep
from api.operator.params import CheckParams
from core.errors import InvalidInput
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


# Action names are snake_case facts (`set_config_noop`, `trust_key_revoked`); `*` only at the end.
_ACTION = re.compile(r"^[a-z0-9_.-]{1,100}$")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        # A timestamp without a zone would be read in the server's zone: refuse rather than guess.
        raise InvalidInput(
            "query parameter 'since' must be an ISO-8601 timestamp with a time zone, "
            "e.g. 2026-01-01T00:00:00Z",
            details={"parameter": "since"},
        )
    return at


def _action(value: str | None) -> tuple[str | None, str | None]:
    """(exact action, action prefix) from `action`; a trailing `*` makes it a prefix."""
    if value is None:
        return None, None
    prefix = value.endswith("*")
    name = value[:-1] if prefix else value
    if not _ACTION.fullmatch(name):
        raise InvalidInput(
            "query parameter 'action' must be an action name (lowercase letters, digits, '_', '.', '-'), "
            "optionally ending in '*' to match a prefix",
            details={"parameter": "action"},
        )
    return (None, name) if prefix else (name, None)


@router.get("/audit", response_model=list[AuditOut])
async def list_audit(
    principal: PrincipalDep,
    pool: PoolDep,
    settings: SettingsDep,
    tenant: Annotated[str | None, Query()] = None,
    extension: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(description="ISO-8601 timestamp with a time zone")] = None,
    action: Annotated[str | None, Query(description="exact action, or a prefix ending in *")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Who changed what, when, in which workflow. Tenant tokens see only their tenant's events."""
    principal.require("installs:manage", "trust:manage")
    if principal.tenant_id is not None:
        principal.require_tenant(tenant or principal.tenant_id)
        tenant = principal.tenant_id
    after = _since(since)
    exact, prefix = _action(action)
    events = await read.list_audit(
        pool,
        tenant_id=tenant,
        extension=extension,
        since=after,
        action=exact,
        action_prefix=prefix,
        limit=limit,
    )
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
