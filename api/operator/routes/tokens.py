"""`POST /v1/tokens`: create an API token through CreateTokenWorkflow.

The API generates the token (`ext_` + 32 random bytes, url-safe) and sends only its sha256 into the
workflow, so the token never lands in history or in the registry; the response carries it once.

Who may create what: a global token with `admin` creates tokens for any tenant or global ones; a
tenant token with `admin` creates tokens only for its own tenant, never global ones. Nobody can mint a
scope they do not hold (admin holds all).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import PrincipalDep, mint_token, token_hash
from api.operator import control
from api.operator.deps import SettingsDep, TemporalDep
from api.operator.fields import DateTimeText, Scope, StorableText, TenantId
from api.operator.params import CheckParams
from core.errors import InvalidInput
from schema.payloads.tokens import CREATE_TOKEN_WORKFLOW, SCOPES, CreateTokenInput, CreateTokenResult
from schema.temporal import token_workflow_id

router = APIRouter(tags=["tokens"], dependencies=[CheckParams])

# A century: far past any sensible token life, well inside datetime's range (beyond it, 500).
MAX_EXPIRES_IN_SECONDS = 100 * 366 * 86_400


class TokenBody(BaseModel):
    tenant_id: TenantId | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    name: StorableText = Field(default="", max_length=200)
    expires_at: DateTimeText | None = None
    expires_in_seconds: int | None = Field(default=None, gt=0, le=MAX_EXPIRES_IN_SECONDS)


class TokenOut(BaseModel):
    token: str = Field(description="the bearer token; shown only in this response")
    token_id: str
    tenant_id: str | None
    scopes: list[Scope]
    name: str
    expires_at: datetime | None
    workflow_id: str
    ui_url: str


def _expiry(body: TokenBody) -> datetime | None:
    if body.expires_at is not None and body.expires_in_seconds is not None:
        raise InvalidInput("give expires_at or expires_in_seconds, not both")
    if body.expires_in_seconds is not None:
        return datetime.now(UTC) + timedelta(seconds=body.expires_in_seconds)
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone")
    return body.expires_at


@router.post("/tokens", response_model=TokenOut)
async def create_token(
    body: TokenBody, principal: PrincipalDep, client: TemporalDep, settings: SettingsDep
) -> TokenOut:
    """Create a token for a tenant (or a global one with no `tenant_id`); needs `admin`."""
    principal.require("admin")
    principal.require_tenant(body.tenant_id)
    unknown = sorted(set(body.scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    expires_at = _expiry(body)
    token = mint_token()
    token_id = str(uuid.uuid4())
    workflow_id = token_workflow_id(token_id)
    started = await control.start(
        client,
        settings,
        CREATE_TOKEN_WORKFLOW,
        CreateTokenInput(
            token_id=token_id,
            token_hash=token_hash(token),
            scopes=sorted(set(body.scopes)),
            tenant_id=body.tenant_id,
            name=body.name,
            expires_at=expires_at,
            actor=principal.actor,
        ),
        workflow_id=workflow_id,
        result_type=CreateTokenResult,
        attributes=control.search_attributes(
            TENANT_ID=body.tenant_id, OPERATION="token_create", ACTOR=principal.actor
        ),
    )
    result = await control.wait_result(started.handle, CreateTokenResult, timeout=settings.wait_seconds)
    if result is None:
        # The token was never shown, so it is useless to the caller even if the workflow completes.
        raise control.still_running(workflow_id)
    return TokenOut(
        token=token,
        token_id=result.token_id,
        tenant_id=result.tenant_id,
        scopes=result.scopes,
        name=result.name,
        expires_at=result.expires_at,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )
