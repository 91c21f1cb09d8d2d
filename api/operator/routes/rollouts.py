"""Fleet rollouts: `POST /v1/rollouts` starts a RolloutWorkflow (schema.payloads.rollout),
`GET /v1/rollouts/{id}` reads its status (Query), `POST /v1/rollouts/{id}/pause|resume|abort` control it
(Updates).

A rollout spans tenants, so only a global token with `installs:manage` (or `admin`) may run one. The
rollout id is the caller's Idempotency-Key when given (a retried start attaches to the same rollout),
else a fresh one; the workflow id is `rollout/<id>`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal, PrincipalDep
from api.errors import map_temporal_errors
from api.operator import control
from api.operator.changes import request_id
from api.operator.deps import PoolDep, SettingsDep, TemporalDep
from api.operator.fields import ExtensionName, TenantId, Version
from api.operator.params import CheckParams
from api.operator.settings import OperatorSettings
from core.errors import Conflict, InvalidInput, NotFound
from registry import read
from schema.errors import ErrorCode
from schema.manifest import MAX_VERSION_CHARS
from schema.payloads.rollout import (
    DEFAULT_MAX_ERROR_RATE_INCREASE,
    DEFAULT_MAX_P99_RATIO,
    DEFAULT_MIN_CALLS,
    DEFAULT_SOAK_SECONDS,
    DEFAULT_WAVES,
    RolloutControl,
    RolloutInput,
    RolloutStatus,
    RolloutThresholds,
)
from schema.rollout import check_waves
from schema.temporal import (
    ROLLOUT_ABORT_UPDATE,
    ROLLOUT_PAUSE_UPDATE,
    ROLLOUT_RESUME_UPDATE,
    ROLLOUT_STATUS_QUERY,
    WorkflowType,
    rollout_workflow_id,
)
from schema.tenants import valid_tenant

router = APIRouter(tags=["rollouts"], dependencies=[CheckParams])

MANAGE = "installs:manage"
MAX_SOAK_SECONDS = 7 * 24 * 3600.0
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key")]


class RolloutBody(BaseModel):
    extension: ExtensionName = Field(min_length=1, max_length=200)
    version: Version = Field(min_length=1, max_length=MAX_VERSION_CHARS)
    # Exactly one of `tenants` (a list) and `all: true`.
    tenants: list[TenantId] | None = Field(default=None, max_length=10_000)
    all: bool = False
    waves: list[str] = Field(default=list(DEFAULT_WAVES), max_length=20)
    soak_seconds: float = Field(default=DEFAULT_SOAK_SECONDS, ge=0, le=MAX_SOAK_SECONDS)
    max_error_rate_increase: float = Field(default=DEFAULT_MAX_ERROR_RATE_INCREASE, ge=0, le=1)
    max_p99_ratio: float = Field(default=DEFAULT_MAX_P99_RATIO, ge=1)
    min_calls: int = Field(default=DEFAULT_MIN_CALLS, ge=0)


class ControlBody(BaseModel):
    reason: str = Field(default="", max_length=500)
    # abort only: roll back the installs the rollout upgraded (default) or leave them.
    rollback: bool = True


class RolloutOut(BaseModel):
    rollout_id: str
    workflow_id: str
    ui_url: str
    extension: str
    version: str
    state: str
    wave: int
    waves_total: int
    installs_total: int
    upgraded: int
    rolled_back: int
    failed: int
    paused: bool
    reason: str
    waves: list[dict[str, Any]]
    # Per install (only with ?outcomes=true: a rollout can hold thousands).
    outcomes: list[dict[str, Any]] | None = None


def _authorize(principal: Principal) -> None:
    principal.require(MANAGE)
    principal.require_global("a rollout (it spans tenants)")


def _out(s: RolloutStatus, settings: OperatorSettings, *, outcomes: bool = False) -> RolloutOut:
    wf_id = rollout_workflow_id(s.rollout_id)
    return RolloutOut(
        rollout_id=s.rollout_id,
        workflow_id=wf_id,
        ui_url=control.ui_url(settings, wf_id),
        extension=s.extension,
        version=s.version,
        state=s.state.value,
        wave=s.wave,
        waves_total=s.waves_total,
        installs_total=s.installs_total,
        upgraded=s.upgraded,
        rolled_back=s.rolled_back,
        failed=s.failed,
        paused=s.paused,
        reason=s.reason,
        waves=[asdict(w) for w in s.waves],
        outcomes=[asdict(o) for o in s.outcomes] if outcomes else None,
    )


def _tenants(body: RolloutBody) -> list[str] | None:
    if body.all == (body.tenants is not None):
        raise InvalidInput("name the tenants (tenants: [...]) or all: true, not both or neither")
    if body.tenants is None:
        return None
    if not body.tenants:
        raise InvalidInput("tenants is empty")
    bad = next((t for t in body.tenants if not valid_tenant(t)), None)
    if bad is not None:
        raise InvalidInput(f"tenant {bad!r} is not a tenant id")
    return sorted(set(body.tenants))


class RolloutStarted(BaseModel):
    rollout_id: str
    workflow_id: str
    ui_url: str
    # True when this Idempotency-Key already named a rollout: this is that one.
    existing: bool


@router.post(
    "/rollouts",
    response_model=RolloutStarted,
    status_code=202,
    responses={404: {"description": "not_found: the version is not published"}},
)
async def start_rollout(
    body: RolloutBody,
    principal: PrincipalDep,
    client: TemporalDep,
    pool: PoolDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Start a rollout of `extension@version` over the selected installs (202 with its status)."""
    _authorize(principal)
    tenants = _tenants(body)
    problem = check_waves(body.waves)
    if problem:
        raise InvalidInput(problem)
    found = await read.get_version(pool, body.extension, body.version)
    if found is None:
        raise NotFound(f"{body.extension}@{body.version} is not published")
    if found.status != "verified":
        raise Conflict(
            f"{body.extension}@{body.version} is {found.status}", code=ErrorCode.VERSION_NOT_INSTALLABLE
        )
    rollout_id = request_id(idempotency_key) if idempotency_key else uuid.uuid4().hex[:16]
    wf_id = rollout_workflow_id(rollout_id)
    started = await control.start(
        client,
        settings,
        WorkflowType.ROLLOUT.value,
        RolloutInput(
            rollout_id=rollout_id,
            extension=body.extension,
            version=body.version,
            tenants=tenants,
            waves=[w.strip() for w in body.waves],
            soak_seconds=body.soak_seconds,
            thresholds=RolloutThresholds(
                max_error_rate_increase=body.max_error_rate_increase,
                max_p99_ratio=body.max_p99_ratio,
                min_calls=body.min_calls,
            ),
            actor=principal.actor,
        ),
        workflow_id=wf_id,
        result_type=RolloutStatus,
        reuse_failed_only=True,
        attributes=control.search_attributes(
            EXTENSION_NAME=body.extension,
            EXTENSION_VERSION=body.version,
            OPERATION="rollout",
            ACTOR=principal.actor,
            ROLLOUT_STATE="running",
        ),
    )
    # No query here: the first workflow task may not have run yet (or no worker polls right now), and
    # a start must not wait for it. GET /v1/rollouts/{id} reads the status.
    out = RolloutStarted(
        rollout_id=rollout_id,
        workflow_id=wf_id,
        ui_url=control.ui_url(settings, wf_id),
        existing=started.earlier,
    )
    return JSONResponse(out.model_dump(), status_code=202)


async def _query(client: Client, wf_id: str) -> RolloutStatus:
    async with map_temporal_errors(workflow_id=wf_id):
        try:
            status = await client.get_workflow_handle(wf_id).query(
                ROLLOUT_STATUS_QUERY, result_type=RolloutStatus, rpc_timeout=control.RPC_TIMEOUT
            )
        except RPCError as exc:
            # A query is answered by a worker: with none polling it runs out of time (CANCELLED).
            if exc.status != RPCStatusCode.CANCELLED:
                raise
            raise control.still_running(wf_id) from None
    if not isinstance(status, RolloutStatus):
        raise NotFound(f"no rollout {wf_id}")
    return status


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
async def get_rollout(
    rollout_id: str,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    outcomes: Annotated[bool, Query(description="include every install's outcome")] = False,
) -> RolloutOut:
    _authorize(principal)
    return _out(
        await _query(client, rollout_workflow_id(request_id(rollout_id))), settings, outcomes=outcomes
    )


async def _control(
    update: str, rollout_id: str, body: ControlBody | None, principal: Principal, client: Client
) -> RolloutStatus:
    _authorize(principal)
    wf_id = rollout_workflow_id(request_id(rollout_id))
    arg = RolloutControl(
        actor=principal.actor,
        reason=body.reason if body else "",
        rollback=body.rollback if body else True,
    )
    handle = client.get_workflow_handle(wf_id)
    async with map_temporal_errors(workflow_id=wf_id):
        try:
            result = await handle.execute_update(
                update, arg, result_type=RolloutStatus, rpc_timeout=control.RPC_TIMEOUT
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await handle.describe()  # NOT_FOUND again (404) when there is no such rollout at all
            raise Conflict(f"rollout {rollout_id} has finished") from None
    assert isinstance(result, RolloutStatus)
    return result


@router.post("/rollouts/{rollout_id}/pause", response_model=RolloutOut)
async def pause_rollout(
    rollout_id: str,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    body: ControlBody | None = None,
) -> RolloutOut:
    """Hold the rollout before its next wave (a wave already soaking is still measured)."""
    return _out(await _control(ROLLOUT_PAUSE_UPDATE, rollout_id, body, principal, client), settings)


@router.post("/rollouts/{rollout_id}/resume", response_model=RolloutOut)
async def resume_rollout(
    rollout_id: str,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    body: ControlBody | None = None,
) -> RolloutOut:
    return _out(await _control(ROLLOUT_RESUME_UPDATE, rollout_id, body, principal, client), settings)


@router.post("/rollouts/{rollout_id}/abort", response_model=RolloutOut)
async def abort_rollout(
    rollout_id: str,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    body: ControlBody | None = None,
) -> RolloutOut:
    """Stop now (a soak ends early) and roll back what the rollout upgraded, unless `rollback: false`."""
    return _out(await _control(ROLLOUT_ABORT_UPDATE, rollout_id, body, principal, client), settings)
