"""Scheduled invocations of a tenant's installs (schema.payloads.schedules): list them with their
Temporal state and last run, run one now, pause or resume one.

The schedules an install has are those its installed version's manifest declares (registry); whether
one is paused and when it runs next is its Temporal Schedule's state (`describe`); its last run is the
newest execution_log row with principal `schedule:<name>` (registry.read_schedules). A Schedule not
found in Temporal is `missing`: the install change that syncs it has not run yet (or failed); pause
and resume refuse it (409 conflict) rather than start a workflow whose activity cannot succeed.

Run-now starts a ScheduledRunWorkflow and pause/resume a ScheduleControlWorkflow, each with the id of
schema.temporal built from the request id (the caller's Idempotency-Key, else a fresh one). Such an id
is never started twice (`reject_duplicate`): the same key again answers with the first run's result,
failed or not, and never calls the guest again. The registry is read first so that a request that
cannot apply (no such install or schedule, install not active) starts nothing; the workflow still
decides. Tenant tokens act only on their own tenant; reads need `ext:read` or `installs:manage`,
the rest `installs:manage`.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import Client, ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal, PrincipalDep
from api.errors import WorkflowFailed, map_temporal_errors
from api.operator import control
from api.operator.changes import request_id
from api.operator.deps import PoolDep, SettingsDep, TemporalDep
from api.operator.fields import StorableText
from api.operator.params import CheckParams
from api.operator.settings import OperatorSettings
from core.errors import Conflict, NotFound
from registry import read, read_schedules
from schema.errors import ErrorCode
from schema.payloads.schedules import (
    SYSTEM_PAUSE_NOTE,
    ScheduleAction,
    ScheduleControlInput,
    ScheduleControlResult,
    ScheduledRunInput,
    ScheduledRunResult,
    ScheduleTrigger,
)
from schema.schedules import DeclaredSchedule, declared
from schema.temporal import (
    WorkflowType,
    install_schedule_id,
    manual_run_workflow_id,
    schedule_control_workflow_id,
)

router = APIRouter(tags=["schedules"], dependencies=[CheckParams])

READ_SCOPES = ("ext:read", "installs:manage")
MANAGE = "installs:manage"
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key")]
# Describe calls in flight at once for one listing (a tenant has at most EXT_SCHEDULE_MAX_PER_TENANT).
DESCRIBE_CONCURRENCY = 16
MAX_NOTE_CHARS = 500
SCHEDULED_RUN_OPERATION = "scheduled_run"

STATE_ACTIVE = "active"
STATE_PAUSED = "paused"  # by an operator (its note says who and why)
STATE_PAUSED_INACTIVE = "paused_install_inactive"  # by the sync: the install is not active
STATE_MISSING = "missing"  # no Temporal Schedule (yet): the install change's sync is pending


class LastRunOut(BaseModel):
    at: datetime
    status: int
    outcome: str  # the execution_log outcome: ok, handler_error, timeout, upstream_error, ...
    request_id: str


class ScheduleOut(BaseModel):
    extension: str
    name: str
    cron: str
    endpoint: str  # "GET /path" or "POST /path"
    has_body: bool
    version: str
    install_status: str
    schedule_id: str
    state: str = Field(description="active | paused | paused_install_inactive | missing")
    paused: bool
    note: str
    next_run_at: datetime | None = Field(description="the next time it fires (none while paused)")
    last_run: LastRunOut | None


class RunOut(BaseModel):
    """A finished run: `outcome` ok or skipped (a failed guest is the 502 scheduled_run_failed)."""

    workflow_id: str
    ui_url: str
    tenant_id: str
    extension: str
    schedule: str
    outcome: str
    reason: str
    request_id: str
    version: str
    status: int
    duration_ms: float
    fuel_consumed: int | None
    body_preview: str


class RunStarted(BaseModel):
    workflow_id: str
    ui_url: str
    # True when this Idempotency-Key already named a run of this schedule: this is that one.
    existing: bool


class PauseBody(BaseModel):
    note: StorableText = Field(default="", max_length=MAX_NOTE_CHARS)


class ControlOut(BaseModel):
    workflow_id: str
    ui_url: str
    tenant_id: str
    extension: str
    schedule: str
    paused: bool
    changed: bool
    note: str


def _state(desc: ScheduleDescription | None) -> tuple[str, bool, str, datetime | None]:
    """(state, paused, note, next run) of a Schedule, or of none."""
    if desc is None:
        return STATE_MISSING, False, "", None
    st = desc.schedule.state
    note = st.note or ""
    if st.paused:
        return (STATE_PAUSED_INACTIVE if note == SYSTEM_PAUSE_NOTE else STATE_PAUSED), True, note, None
    times = desc.info.next_action_times
    return STATE_ACTIVE, False, note, times[0] if times else None


async def _describe(client: Client, schedule_id: str, gate: asyncio.Semaphore) -> ScheduleDescription | None:
    async with gate, map_temporal_errors():
        try:
            return await client.get_schedule_handle(schedule_id).describe(rpc_timeout=control.RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise


@router.get("/tenants/{tenant}/schedules", response_model=list[ScheduleOut])
async def list_schedules(
    tenant: str,
    principal: PrincipalDep,
    pool: PoolDep,
    client: TemporalDep,
    extension: Annotated[str | None, Query(description="only this extension's schedules")] = None,
) -> list[ScheduleOut]:
    """Every schedule the tenant's installs declare, in extension then manifest order."""
    principal.require(*READ_SCOPES)
    principal.require_tenant(tenant)
    rows: list[tuple[read.ResolvedInstall, DeclaredSchedule]] = [
        (i, s)
        for i in await read.list_installs(pool, tenant)
        if extension is None or i.extension == extension
        for s in declared(i.manifest)
    ]
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)
    described = await asyncio.gather(
        *(_describe(client, install_schedule_id(tenant, i.extension, s.name), gate) for i, s in rows)
    )
    last = await read_schedules.last_runs(pool, tenant, [(i.extension, s.name) for i, s in rows])
    out = []
    for (i, s), desc in zip(rows, described, strict=True):
        state, paused, note, next_run = _state(desc)
        run = last.get((i.extension, s.name))
        out.append(
            ScheduleOut(
                extension=i.extension,
                name=s.name,
                cron=s.cron,
                endpoint=f"{s.method} {s.path}",
                has_body=s.body is not None,
                version=i.version,
                install_status=i.status,
                schedule_id=install_schedule_id(tenant, i.extension, s.name),
                state=state,
                paused=paused,
                note=note,
                next_run_at=next_run,
                last_run=LastRunOut(**{k: v for k, v in asdict(run).items() if k in LastRunOut.model_fields})
                if run is not None
                else None,
            )
        )
    return out


async def _declared_install(
    pool: asyncpg.Pool, tenant: str, name: str, schedule: str, *, need_active: bool
) -> read.ResolvedInstall:
    """The install, when it declares `schedule` (404 otherwise) and, with `need_active`, is active
    (409 install_not_active otherwise)."""
    found = await read.resolve_install(pool, tenant, name)
    if found is None:
        raise NotFound(
            f"{name} is not installed in tenant {tenant!r}", details={"tenant_id": tenant, "name": name}
        )
    if schedule not in {s.name for s in declared(found.manifest)}:
        raise NotFound(
            f"{name}@{found.version} in tenant {tenant} has no schedule {schedule!r}",
            details={"schedule": schedule},
        )
    if need_active and not found.active:
        verified = found.version_status == "verified"
        status = found.status if verified else f"at a {found.version_status} version"
        raise Conflict(
            f"{name} is {status} in tenant {tenant}; enable it first",
            code=ErrorCode.INSTALL_NOT_ACTIVE,
            details={"status": found.status, "version_status": found.version_status},
        )
    return found


async def _started_before(client: Client, workflow_id: str) -> bool:
    """Whether a workflow with this id exists (a keyed retry answers from it, whatever changed since)."""
    async with map_temporal_errors(workflow_id=workflow_id):
        try:
            await client.get_workflow_handle(workflow_id).describe(rpc_timeout=control.RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True


async def _synced(client: Client, tenant: str, name: str, schedule: str) -> None:
    """409 conflict when the schedule has no Temporal Schedule (state `missing`): the control activity
    would retry its describe until it gives up, minutes after the caller stopped waiting."""
    if await _describe(client, install_schedule_id(tenant, name, schedule), asyncio.Semaphore()) is None:
        raise Conflict(
            f"schedule {schedule!r} of {name} in tenant {tenant} has no Temporal Schedule yet (its "
            "install's last change did not sync it); a change of the install syncs it, "
            "e.g. disable and enable",
            details={"schedule": schedule, "state": STATE_MISSING},
        )


def _authorize(principal: Principal, tenant: str) -> None:
    principal.require(MANAGE)
    principal.require_tenant(tenant)


@router.post(
    "/tenants/{tenant}/installs/{name}/schedules/{schedule}/run",
    response_model=RunOut,
    responses={
        202: {"model": RunStarted, "description": "with ?wait=false: the run's workflow, started"},
        409: {"description": "install_not_active: enable the install first"},
        502: {"description": "scheduled_run_failed: the guest answered 5xx or failed (trap, fuel, time)"},
    },
)
async def run_now(
    tenant: str,
    name: str,
    schedule: str,
    principal: PrincipalDep,
    pool: PoolDep,
    client: TemporalDep,
    settings: SettingsDep,
    wait: Annotated[bool, Query(description="wait for the run's result (else 202 at once)")] = True,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Run the schedule's call once now, as its Schedule would (it skips while a run is going)."""
    _authorize(principal, tenant)
    rid = request_id(idempotency_key)
    workflow_id = manual_run_workflow_id(tenant, name, schedule, rid)
    if idempotency_key is None or not await _started_before(client, workflow_id):
        await _declared_install(pool, tenant, name, schedule, need_active=True)
    started = await control.start(
        client,
        settings,
        WorkflowType.SCHEDULED_RUN.value,
        ScheduledRunInput(
            tenant_id=tenant,
            extension=name,
            schedule=schedule,
            trigger=ScheduleTrigger.MANUAL,
            actor=principal.actor,
        ),
        workflow_id=workflow_id,
        result_type=ScheduledRunResult,
        reject_duplicate=True,
        attributes=control.search_attributes(
            TENANT_ID=tenant,
            EXTENSION_NAME=name,
            OPERATION=SCHEDULED_RUN_OPERATION,
            ACTOR=principal.actor,
        ),
    )
    ui_url = control.ui_url(settings, workflow_id)
    if not wait:
        out = RunStarted(workflow_id=workflow_id, ui_url=ui_url, existing=started.earlier)
        return JSONResponse(out.model_dump(), status_code=202)
    result = await control.finished(started, ScheduledRunResult, settings)
    return RunOut(
        workflow_id=workflow_id,
        ui_url=ui_url,
        **{k: v for k, v in asdict(result).items() if k in RunOut.model_fields},
    )


async def _control(
    action: ScheduleAction,
    tenant: str,
    name: str,
    schedule: str,
    note: str,
    principal: Principal,
    pool: asyncpg.Pool,
    client: Client,
    settings: OperatorSettings,
    idempotency_key: str | None,
) -> ControlOut:
    _authorize(principal, tenant)
    rid = request_id(idempotency_key)
    workflow_id = schedule_control_workflow_id(tenant, name, schedule, rid)
    if idempotency_key is None or not await _started_before(client, workflow_id):
        await _declared_install(pool, tenant, name, schedule, need_active=action is ScheduleAction.RESUME)
        await _synced(client, tenant, name, schedule)
    started = await control.start(
        client,
        settings,
        WorkflowType.SCHEDULE_CONTROL.value,
        ScheduleControlInput(
            tenant_id=tenant,
            extension=name,
            schedule=schedule,
            action=action,
            actor=principal.actor,
            request_id=rid,
            note=note,
        ),
        workflow_id=workflow_id,
        result_type=ScheduleControlResult,
        reject_duplicate=True,
        attributes=control.search_attributes(
            TENANT_ID=tenant,
            EXTENSION_NAME=name,
            OPERATION=f"schedule_{action.value}",
            ACTOR=principal.actor,
        ),
    )
    result = await control.finished(started, ScheduleControlResult, settings)
    if result.paused != (action is ScheduleAction.PAUSE):
        # The id names the schedule, not the action: the key was first sent with the other one.
        raise WorkflowFailed(
            f"Idempotency-Key {rid} was first sent to "
            f"{'pause' if result.paused else 'resume'} this schedule, not to {action.value} it",
            code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
            details={"workflow_id": workflow_id},
        )
    return ControlOut(
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
        **{k: v for k, v in asdict(result).items() if k in ControlOut.model_fields},
    )


@router.post(
    "/tenants/{tenant}/installs/{name}/schedules/{schedule}/pause",
    response_model=ControlOut,
    responses={409: {"description": "conflict: the control workflow refused the change"}},
)
async def pause_schedule(
    tenant: str,
    name: str,
    schedule: str,
    principal: PrincipalDep,
    pool: PoolDep,
    client: TemporalDep,
    settings: SettingsDep,
    body: PauseBody | None = None,
    idempotency_key: IdempotencyKey = None,
) -> ControlOut:
    """Pause the schedule with a note (default: who paused it); it stays paused across disable and
    enable of the install until resumed."""
    note = body.note if body is not None else ""
    return await _control(
        ScheduleAction.PAUSE, tenant, name, schedule, note, principal, pool, client, settings, idempotency_key
    )


@router.post(
    "/tenants/{tenant}/installs/{name}/schedules/{schedule}/resume",
    response_model=ControlOut,
    responses={409: {"description": "install_not_active: enable the install first"}},
)
async def resume_schedule(
    tenant: str,
    name: str,
    schedule: str,
    principal: PrincipalDep,
    pool: PoolDep,
    client: TemporalDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> ControlOut:
    """Resume an operator's pause (refused while the install is not active)."""
    return await _control(
        ScheduleAction.RESUME, tenant, name, schedule, "", principal, pool, client, settings, idempotency_key
    )
