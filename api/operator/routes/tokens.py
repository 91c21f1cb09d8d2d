"""API tokens: create (CreateTokenWorkflow), list (a registry read), revoke (RevokeTokenWorkflow).

    POST /v1/tokens                    create; the response carries the token, once
    GET  /v1/tokens[?tenant=T]         list, newest first, never a hash
    POST /v1/tokens/{id}/revoke        revoke (one-way, idempotent); gateways drop it at once

The API generates the token (`ext_` + 32 random bytes, url-safe) and sends only its sha256 into the
workflow, so the token never lands in history or in the registry; the response carries it once.

Names: every new token has a name (schema.payloads.tokens.NAME_RE; `token-<12 hex of its id>` when
none is given, since CONTRACT.md keeps `extctl tokens create` without `--name`), unique among the live
tokens of its tenant (or among global tokens). Its identity — `name`, or `tenant/name` — is the Actor
of the changes made with it.

Who may do what (all need `admin`): a global admin token creates, lists and revokes tokens of any
tenant and global ones; a tenant admin token only its own tenant's, never global ones. Nobody can mint
a scope they do not hold (admin holds all). A token of another tenant is reported exactly like one
that does not exist (404 token_not_found), so ids cannot be probed across tenants.

Listing reads the registry directly, like every GET of this API: a read changes nothing, so there is
nothing for a workflow to make durable or to audit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import PrincipalDep, TokenAuthenticator, mint_token, token_hash
from api.operator import control
from api.operator.deps import PoolDep, SettingsDep, TemporalDep
from api.operator.fields import DateTimeText, Scope, StorableText, TenantId
from api.operator.params import CheckParams
from core.errors import Conflict, InvalidInput, NotFound
from registry.read_operator import MAX_TOKENS, TokenRecord, list_tokens, token_by_id, token_by_identity
from schema.errors import ErrorCode
from schema.payloads.tokens import (
    CREATE_TOKEN_WORKFLOW,
    NAME_RULE,
    RESERVED_NAMES,
    REVOKE_TOKEN_WORKFLOW,
    SCOPES,
    CreateTokenInput,
    CreateTokenResult,
    RevokeTokenInput,
    RevokeTokenResult,
    default_name,
    identity_of,
    valid_name,
)
from schema.temporal import token_revoke_workflow_id, token_workflow_id

router = APIRouter(tags=["tokens"], dependencies=[CheckParams])

# A century: far past any sensible token life, well inside datetime's range (beyond it, 500).
MAX_EXPIRES_IN_SECONDS = 100 * 366 * 86_400


class TokenBody(BaseModel):
    tenant_id: TenantId | None = Field(default=None, min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    name: StorableText = Field(
        default="", max_length=63, description=f"{NAME_RULE}; default token-<12 hex of the id>"
    )
    expires_at: DateTimeText | None = None
    expires_in_seconds: int | None = Field(default=None, gt=0, le=MAX_EXPIRES_IN_SECONDS)


class TokenOut(BaseModel):
    token: str = Field(description="the bearer token; shown only in this response")
    token_id: str
    tenant_id: str | None
    scopes: list[Scope]
    name: str
    identity: str = Field(description="the Actor of changes made with this token")
    expires_at: datetime | None
    workflow_id: str
    ui_url: str


class TokenInfo(BaseModel):
    token_id: str
    tenant_id: str | None
    name: str
    identity: str = Field(description="the Actor of its changes: name, tenant/name, or token:<id> (older)")
    scopes: list[str]
    status: str = Field(description="active, expired or revoked")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class RevokeBody(BaseModel):
    reason: StorableText = Field(default="", max_length=1000)


class RevokeOut(BaseModel):
    token_id: str
    tenant_id: str | None
    identity: str
    revoked_at: datetime | None
    already_revoked: bool
    notified_gateways: int
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
    body: TokenBody, principal: PrincipalDep, client: TemporalDep, pool: PoolDep, settings: SettingsDep
) -> TokenOut:
    """Create a token for a tenant (or a global one with no `tenant_id`); needs `admin`."""
    principal.require("admin")
    principal.require_tenant(body.tenant_id)
    unknown = sorted(set(body.scopes) - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    expires_at = _expiry(body)
    token_id = str(uuid.uuid4())
    name = body.name or default_name(token_id)
    if not valid_name(name):
        reserved = f" ({', '.join(sorted(RESERVED_NAMES))} are reserved)" if name in RESERVED_NAMES else ""
        raise InvalidInput(f"name must be {NAME_RULE}{reserved}")
    identity = identity_of(body.tenant_id, name)
    # A friendly early answer; the store activity's unique index is what actually decides (races).
    if await token_by_identity(pool, identity) is not None:
        raise Conflict(f"a live token named {name!r} already exists here; revoke it or pick another name")
    token = mint_token()
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
            name=name,
            expires_at=expires_at,
            actor=principal.actor,
            identity=identity,
        ),
        workflow_id=workflow_id,
        result_type=CreateTokenResult,
        attributes=control.search_attributes(
            TENANT_ID=body.tenant_id, OPERATION="token_create", ACTOR=principal.actor
        ),
    )
    # The token was never shown, so it is useless to the caller even if the workflow completes.
    result = await control.finished(started, CreateTokenResult, settings)
    return TokenOut(
        token=token,
        token_id=result.token_id,
        tenant_id=result.tenant_id,
        scopes=result.scopes,
        name=result.name,
        identity=result.identity,
        expires_at=result.expires_at,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )


def _info(record: TokenRecord, now: datetime) -> TokenInfo:
    if record.revoked_at is not None:
        status = "revoked"
    elif record.expires_at is not None and record.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return TokenInfo(
        token_id=record.token_id,
        tenant_id=record.tenant_id,
        name=record.name,
        identity=record.identity or f"token:{record.token_id}",
        scopes=sorted(record.scopes),
        status=status,
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


@router.get("/tokens", response_model=list[TokenInfo])
async def get_tokens(
    principal: PrincipalDep,
    pool: PoolDep,
    tenant: Annotated[str | None, Query(description="one tenant's tokens; omit for all you may see")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TOKENS)] = 100,
) -> list[TokenInfo]:
    """Tokens newest first (needs `admin`): a tenant admin sees only its tenant's; never a hash."""
    principal.require("admin")
    if principal.tenant_id is not None:
        principal.require_tenant(tenant or principal.tenant_id)
        tenant = principal.tenant_id
    else:
        principal.require_tenant(tenant)  # a global token may name any (valid) tenant
    records = await list_tokens(pool, tenant_id=tenant, limit=limit)
    now = datetime.now(UTC)
    return [_info(r, now) for r in records]


@router.post("/tokens/{token_id}/revoke", response_model=RevokeOut)
async def revoke_token(
    token_id: str,
    request: Request,
    principal: PrincipalDep,
    client: TemporalDep,
    pool: PoolDep,
    settings: SettingsDep,
    body: RevokeBody | None = None,
) -> RevokeOut:
    """Revoke a token for good (needs `admin`; a tenant admin only its tenant's). Revoking a revoked
    token is a no-op that answers `already_revoked: true`."""
    principal.require("admin")
    record = await token_by_id(pool, token_id)
    if record is None or (principal.tenant_id is not None and record.tenant_id != principal.tenant_id):
        raise NotFound(f"no token {token_id!r}", code=ErrorCode.TOKEN_NOT_FOUND)
    workflow_id = token_revoke_workflow_id(record.token_id)
    started = await control.start(
        client,
        settings,
        REVOKE_TOKEN_WORKFLOW,
        RevokeTokenInput(
            token_id=record.token_id,
            tenant_id=record.tenant_id,
            actor=principal.actor,
            reason=body.reason if body else "",
        ),
        workflow_id=workflow_id,
        result_type=RevokeTokenResult,
        attributes=control.search_attributes(
            TENANT_ID=record.tenant_id, OPERATION="token_revoke", ACTOR=principal.actor
        ),
    )
    result = await control.finished(started, RevokeTokenResult, settings)
    # This process need not wait for its own pub/sub message (the operator API does not subscribe).
    authenticator: TokenAuthenticator = request.app.state.authenticator
    authenticator.forget_token(record.token_id)
    return RevokeOut(
        token_id=result.token_id,
        tenant_id=result.tenant_id,
        identity=result.identity or f"token:{result.token_id}",
        revoked_at=result.revoked_at,
        already_revoked=not result.changed,
        notified_gateways=result.notified,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )
