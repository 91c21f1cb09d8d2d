"""Installs of one extension in one tenant: reads from the registry, changes through the install entity
workflow (update-with-start, schema.payloads.install). Tenant tokens act only on their own tenant.

Every change goes through `api.operator.changes.submit` and accepts an `Idempotency-Key` header: the
same key again returns the first result. Secrets are sealed before they enter Temporal and are never
echoed back: responses carry only their key names and version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field, StrictBool
from temporalio.client import Client

from api.auth import Principal, PrincipalDep
from api.operator import changes, control
from api.operator.changes import Change
from api.operator.deps import PoolDep, Resources, ResourcesDep, TemporalDep
from api.operator.fields import ExtensionName, Version
from api.operator.params import CheckParams
from core.errors import NotFound
from registry import read
from schema.install_rules import GrantSet
from schema.manifest import MAX_SCHEDULES, MAX_VERSION_CHARS, SCHEDULE_NAME_RE
from schema.payloads.install import InstallOperation
from schema.temporal import install_workflow_id

router = APIRouter(tags=["installs"], dependencies=[CheckParams])

READ_SCOPES = ("ext:read", "installs:manage")
Op = InstallOperation
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key")]


class GrantBody(BaseModel):
    """Capabilities (`cap:...`) and egress hosts, as a version's manifest names them."""

    capabilities: list[str] = Field(default=[], max_length=32)
    egress: list[str] = Field(default=[], max_length=64)

    def grant_set(self) -> GrantSet:
        return GrantSet.of(self.capabilities, self.egress)


def _grant(body: GrantBody | None) -> GrantSet | None:
    return body.grant_set() if body is not None else None


class InstallBody(BaseModel):
    """Install is declarative: at the installed version a given `config`, `secrets` or `deny` replaces
    the install's config, secret set or grant; an omitted one leaves it as it is."""

    extension: ExtensionName = Field(min_length=1, max_length=200)
    version: Version = Field(min_length=1, max_length=MAX_VERSION_CHARS)
    config: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None
    # What not to grant of what the version requests (defaults cannot be denied).
    deny: GrantBody | None = None


ScheduleName = Annotated[str, Field(pattern=SCHEDULE_NAME_RE, max_length=63)]
# Schedules the operator agrees to lose because the target no longer declares the endpoint they call
# (else 409 schedule_endpoint_dropped names them; schema.schedules).
DropSchedules = Annotated[list[ScheduleName] | None, Field(default=None, max_length=MAX_SCHEDULES)]


class VersionBody(BaseModel):
    version: Version = Field(min_length=1, max_length=MAX_VERSION_CHARS)
    # Consent to exactly what the target version adds beyond the current grant (409 consent_required
    # names it); `deny` keeps some of it (or of what is granted now) ungranted instead.
    accept: GrantBody | None = None
    deny: GrantBody | None = None
    drop_schedules: DropSchedules = None


class RollbackBody(BaseModel):
    version: Version | None = None
    accept: GrantBody | None = None
    deny: GrantBody | None = None
    drop_schedules: DropSchedules = None


class ConfigBody(BaseModel):
    config: dict[str, Any]
    # False: merge these keys into the current config; true: the config becomes exactly these keys.
    replace: StrictBool = False


class SecretsBody(BaseModel):
    secrets: dict[str, str] = Field(min_length=1)


class LimitsBody(BaseModel):
    rps: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, gt=0, le=2**31 - 1)  # a Postgres `integer`


class DebugBody(BaseModel):
    # Strict: "false" or 0 must not be coerced into a decision about opening a tenant's debug stream.
    enabled: StrictBool


class GrantOut(BaseModel):
    capabilities: list[str]
    egress: list[str]


def _grant_out(g: GrantSet | None) -> GrantOut | None:
    return GrantOut(capabilities=g.capabilities, egress=g.egress) if g is not None else None


class ChangeOut(BaseModel):
    request_id: str
    operation: str
    tenant_id: str
    extension: str
    install_id: str
    revision: int
    version: str
    previous_version: str
    status: str
    config_version: int
    secrets_version: int
    changed: bool
    workflow_id: str
    ui_url: str
    secret_keys: list[str] | None = None
    # What the install's version requests and what the install is granted (after the change).
    requested: GrantOut | None = None
    granted: GrantOut | None = None


class HistoryOut(BaseModel):
    revision: int
    operation: str
    from_version: str | None
    to_version: str | None
    workflow_id: str
    at: datetime


class InstallOut(BaseModel):
    install_id: str
    tenant_id: str
    extension: str
    version: str
    content_hash: str
    status: str
    version_status: str
    revision: int
    granted_capabilities: list[str]
    granted_egress: list[str]
    config: dict[str, Any]
    config_version: int
    secrets_version: int
    rate_limit_rps: float | None
    rate_limit_burst: int | None
    debug_enabled: bool
    workflow_id: str
    ui_url: str
    history: list[HistoryOut] | None = None


async def _change(
    principal: Principal,
    client: Client,
    resources: Resources,
    tenant: str,
    extension: str,
    key: str | None,
    change: Change,
) -> ChangeOut:
    request, result = await changes.submit(principal, client, resources, tenant, extension, key, change)
    workflow_id = result.workflow_id or install_workflow_id(tenant, extension)
    return ChangeOut(
        **{k: getattr(result, k) for k in ChangeOut.model_fields if k not in _GRANTS and hasattr(result, k)},
        ui_url=control.ui_url(resources.settings, workflow_id),
        secret_keys=request.secrets.key_names if request.secrets else None,
        requested=_grant_out(result.requested),
        granted=_grant_out(result.granted),
    )


_GRANTS = frozenset({"requested", "granted"})  # GrantSet in the result, GrantOut in the response


@router.post("/tenants/{tenant}/installs", response_model=ChangeOut)
async def install(
    tenant: str,
    body: InstallBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """Install `extension@version`; at the installed version, apply what is given (InstallBody)."""
    change = Change(
        operation=Op.INSTALL,
        version=body.version,
        config=body.config,
        secrets=body.secrets,
        deny=_grant(body.deny),
    )
    return await _change(principal, client, resources, tenant, body.extension, idempotency_key, change)


@router.post("/tenants/{tenant}/installs/{name}/upgrade", response_model=ChangeOut)
async def upgrade(
    tenant: str,
    name: str,
    body: VersionBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    change = Change(
        operation=Op.UPGRADE,
        version=body.version,
        accept=_grant(body.accept),
        deny=_grant(body.deny),
        drop_schedules=body.drop_schedules,
    )
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.post("/tenants/{tenant}/installs/{name}/rollback", response_model=ChangeOut)
async def rollback(
    tenant: str,
    name: str,
    body: RollbackBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """Back to the previous version in the install's history, or to `version` (one it ran before)."""
    change = Change(
        operation=Op.ROLLBACK,
        version=body.version or "",
        accept=_grant(body.accept),
        deny=_grant(body.deny),
        drop_schedules=body.drop_schedules,
    )
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.post("/tenants/{tenant}/installs/{name}/enable", response_model=ChangeOut)
async def enable(
    tenant: str,
    name: str,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    return await _change(
        principal, client, resources, tenant, name, idempotency_key, Change(operation=Op.ENABLE)
    )


@router.post("/tenants/{tenant}/installs/{name}/disable", response_model=ChangeOut)
async def disable(
    tenant: str,
    name: str,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    return await _change(
        principal, client, resources, tenant, name, idempotency_key, Change(operation=Op.DISABLE)
    )


@router.delete("/tenants/{tenant}/installs/{name}", response_model=ChangeOut)
async def uninstall(
    tenant: str,
    name: str,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    change = Change(operation=Op.UNINSTALL)
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.put("/tenants/{tenant}/installs/{name}/config", response_model=ChangeOut)
async def set_config(
    tenant: str,
    name: str,
    body: ConfigBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """Merge keys into the install's config, or replace it with `replace` (validated against the
    version's config_schema either way)."""
    change = Change(operation=Op.SET_CONFIG, config=body.config, config_merge=not body.replace)
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.put("/tenants/{tenant}/installs/{name}/secrets", response_model=ChangeOut)
async def set_secrets(
    tenant: str,
    name: str,
    body: SecretsBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """Replace the install's secrets; the response names the keys, never the values."""
    change = Change(operation=Op.SET_SECRETS, secrets=body.secrets)
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.put("/tenants/{tenant}/installs/{name}/limits", response_model=ChangeOut)
async def set_limits(
    tenant: str,
    name: str,
    body: LimitsBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """The gateway rate limit of this install; omitted values fall back to the gateway defaults."""
    change = Change(operation=Op.SET_LIMITS, rate_limit_rps=body.rps, rate_limit_burst=body.burst)
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


@router.put("/tenants/{tenant}/installs/{name}/debug", response_model=ChangeOut)
async def set_debug(
    tenant: str,
    name: str,
    body: DebugBody,
    principal: PrincipalDep,
    client: TemporalDep,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> ChangeOut:
    """The operator flag that opens the install's debug stream although its manifest does not grant
    `cap:debug.logs` (the caller still needs a token with `ext:debug`)."""
    change = Change(operation=Op.SET_DEBUG, debug_enabled=body.enabled)
    return await _change(principal, client, resources, tenant, name, idempotency_key, change)


def _install_out(i: read.ResolvedInstall, resources: Resources) -> InstallOut:
    workflow_id = install_workflow_id(i.tenant_id, i.extension)
    return InstallOut(
        **{k: getattr(i, k) for k in InstallOut.model_fields if hasattr(i, k) and k != "history"},
        workflow_id=workflow_id,
        ui_url=control.ui_url(resources.settings, workflow_id),
    )


@router.get("/installs", response_model=list[InstallOut])
async def list_installs(
    principal: PrincipalDep,
    pool: PoolDep,
    resources: ResourcesDep,
    tenant: Annotated[str | None, Query()] = None,
) -> list[InstallOut]:
    """Installs of one tenant (tenant tokens: always their own) or of all tenants (global tokens)."""
    principal.require(*READ_SCOPES)
    if principal.tenant_id is not None:
        principal.require_tenant(tenant or principal.tenant_id)
        tenant = principal.tenant_id
    return [_install_out(i, resources) for i in await read.list_installs(pool, tenant)]


@router.get("/tenants/{tenant}/installs/{name}", response_model=InstallOut)
async def get_install(
    tenant: str, name: str, principal: PrincipalDep, pool: PoolDep, resources: ResourcesDep
) -> InstallOut:
    """One install with its version history."""
    principal.require(*READ_SCOPES)
    principal.require_tenant(tenant)
    found = await read.resolve_install(pool, tenant, name)
    if found is None:
        raise NotFound(f"{name} is not installed in tenant {tenant!r}")
    out = _install_out(found, resources)
    history = await read.install_history(pool, found.install_id)
    out.history = [HistoryOut(**vars(h)) for h in history]
    return out
