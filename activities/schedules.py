"""Activities of scheduled invocations (schema.payloads.schedules): keep an install's Temporal
Schedules in step with the registry, run one scheduled call through a runner, pause or resume one.

Schedules are Temporal state, not registry rows: the manifest of the installed version says which
exist and what they call; the Schedule holds when (cron) and whether it is paused. Sync is
idempotent (create, else update in place; delete ignores a Schedule already gone), so a retried or
repeated sync converges on the same state.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import asyncpg
import httpx
import structlog
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from activities._errors import activity_errors
from core.errors import Conflict, NotFound
from registry import read, read_gateway, write
from registry.envelope import prepare
from schema.envelope import ExecuteResponse
from schema.errors import ErrorCode
from schema.payloads.schedules import (
    CATCHUP_WINDOW,
    MAX_RESULT_BODY_CHARS,
    SYSTEM_PAUSE_NOTE,
    RunOutcome,
    ScheduleAction,
    ScheduleControlInput,
    ScheduleControlResult,
    ScheduledRunInput,
    ScheduledRunResult,
    SyncSchedulesInput,
    SyncSchedulesResult,
)
from schema.schedules import DeclaredSchedule, declared
from schema.temporal import SearchAttribute, WorkflowType, install_schedule_id, scheduled_run_workflow_id

log = structlog.get_logger(__name__)

RUNNER_AUTH_HEADER = "x-runner-auth"
# The runner's own answer beyond the guest's timeout (queueing, instantiate) before we give up.
RUNNER_MARGIN_S = 10.0
_KEYS = {
    name: SearchAttributeKey.for_keyword(name.value)
    for name in (
        SearchAttribute.TENANT_ID,
        SearchAttribute.EXTENSION_NAME,
        SearchAttribute.OPERATION,
        SearchAttribute.ACTOR,
    )
}
SCHEDULED_RUN_OPERATION = "scheduled_run"


def _schedule(
    tenant: str, extension: str, sched: DeclaredSchedule, task_queue: str, state: ScheduleState
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WorkflowType.SCHEDULED_RUN.value,
            ScheduledRunInput(tenant_id=tenant, extension=extension, schedule=sched.name),
            id=scheduled_run_workflow_id(tenant, extension, sched.name),
            task_queue=task_queue,
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(_KEYS[SearchAttribute.TENANT_ID], tenant),
                    SearchAttributePair(_KEYS[SearchAttribute.EXTENSION_NAME], extension),
                    SearchAttributePair(_KEYS[SearchAttribute.OPERATION], SCHEDULED_RUN_OPERATION),
                    SearchAttributePair(_KEYS[SearchAttribute.ACTOR], f"schedule:{sched.name}"),
                ]
            ),
        ),
        spec=ScheduleSpec(cron_expressions=[sched.cron]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=state,
    )


def _gone(err: RPCError) -> bool:
    return err.status == RPCStatusCode.NOT_FOUND


def _runner_transport(url: str) -> tuple[str, httpx.AsyncBaseTransport | None]:
    if url.startswith("unix:"):
        return "http://runner", httpx.AsyncHTTPTransport(uds=url.removeprefix("unix:"))
    return url.rstrip("/"), None


def _header_lines(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.decode().split("\r\n"):
        name, sep, value = line.partition(": ")
        if sep:
            out[name] = value
    return out


def _outcome(http_status: int, answer: ExecuteResponse) -> tuple[int, str, RunOutcome, str]:
    """(status for the log, execution_log outcome, run outcome, reason) of a runner answer."""
    if http_status == 200 and answer.error is None:
        status = answer.status
        if status >= 500:
            return status, "handler_error", RunOutcome.ERROR, f"the handler answered {status}"
        return status, "ok" if status < 400 else "handler_error", RunOutcome.OK, ""
    code = answer.error.code if answer.error is not None else f"http_{http_status}"
    logged = "timeout" if code == ErrorCode.DEADLINE_EXCEEDED.value else "upstream_error"
    return http_status, logged, RunOutcome.ERROR, code


class ScheduleActivities:
    def __init__(self, pool: asyncpg.Pool, client: Client, *, runner_url: str, runner_auth: str) -> None:
        """`runner_url`: comma-separated http:// or unix: runner URLs (frame:// entries are skipped);
        a run goes to the next one round robin and fails over to the others when it cannot connect."""
        self.pool = pool
        self.client = client
        self._auth = runner_auth
        self._runners: list[tuple[str, httpx.AsyncClient]] = []
        for url in (u.strip() for u in runner_url.split(",")):
            if url and not url.startswith("frame://"):
                base, transport = _runner_transport(url)
                self._runners.append(
                    (base, httpx.AsyncClient(transport=transport) if transport else httpx.AsyncClient())
                )
        if not self._runners:
            raise ValueError("scheduled runs need an http:// or unix: runner URL")
        self._next = 0

    async def aclose(self) -> None:
        for _, http in self._runners:
            await http.aclose()

    async def _post(self, content: bytes, headers: dict[str, str], timeout: httpx.Timeout) -> httpx.Response:
        """POST the envelope to a runner; a runner that cannot be connected to is skipped for the next
        (nothing was sent to it). All unreachable: the ConnectError propagates and the activity is
        retried with backoff."""
        start = self._next
        self._next = (self._next + 1) % len(self._runners)
        for i in range(len(self._runners)):
            base, http = self._runners[(start + i) % len(self._runners)]
            try:
                return await http.post(
                    f"{base}/v1/execute", content=content, headers=headers, timeout=timeout
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if i == len(self._runners) - 1:
                    raise
                log.warning("scheduled_run_runner_unreachable", runner=base)
        raise AssertionError("unreachable: the loop returns or raises")

    # --- sync -----------------------------------------------------------------------------------

    @activity.defn(name="sync_schedules")
    async def sync_schedules(self, inp: SyncSchedulesInput) -> SyncSchedulesResult:
        """Make the install's Schedules what its registry state says (see the module docstring)."""
        with activity_errors():
            found = await read.resolve_install(self.pool, inp.tenant_id, inp.extension)
        now = declared(found.manifest) if found is not None else []
        active = found is not None and found.active
        task_queue = activity.info().task_queue
        result = SyncSchedulesResult()
        for sched in now:
            await self._ensure(inp, sched, task_queue, active, result)
        for name in sorted(set(inp.retire) - {s.name for s in now}):
            try:
                await self.client.get_schedule_handle(
                    install_schedule_id(inp.tenant_id, inp.extension, name)
                ).delete()
                result.deleted.append(name)
            except RPCError as err:
                if not _gone(err):
                    raise
        log.info(
            "schedules_synced",
            tenant_id=inp.tenant_id,
            extension=inp.extension,
            created=result.created,
            deleted=result.deleted,
            paused=result.paused,
            resumed=result.resumed,
        )
        return result

    async def _ensure(
        self,
        inp: SyncSchedulesInput,
        sched: DeclaredSchedule,
        task_queue: str,
        active: bool,
        result: SyncSchedulesResult,
    ) -> None:
        sid = install_schedule_id(inp.tenant_id, inp.extension, sched.name)
        fresh = ScheduleState(paused=not active, note="" if active else SYSTEM_PAUSE_NOTE)
        try:
            await self.client.create_schedule(
                sid, _schedule(inp.tenant_id, inp.extension, sched, task_queue, fresh)
            )
            result.created.append(sched.name)
            if not active:
                result.paused.append(sched.name)
            return
        except ScheduleAlreadyRunningError:
            pass
        changes: dict[str, bool] = {}

        def _update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            paused, note = state.paused, state.note or ""
            if not active and not paused:
                paused, note = True, SYSTEM_PAUSE_NOTE
                changes["paused"] = True
            elif active and paused and note == SYSTEM_PAUSE_NOTE:
                # Only a pause of ours is lifted: an operator's pause outlives disable and enable.
                paused, note = False, ""
                changes["resumed"] = True
            kept = ScheduleState(paused=paused, note=note)
            return ScheduleUpdate(schedule=_schedule(inp.tenant_id, inp.extension, sched, task_queue, kept))

        await self.client.get_schedule_handle(sid).update(_update)
        result.updated.append(sched.name)
        if changes.get("paused"):
            result.paused.append(sched.name)
        if changes.get("resumed"):
            result.resumed.append(sched.name)

    # --- control --------------------------------------------------------------------------------

    @activity.defn(name="control_schedule")
    async def control_schedule(self, inp: ScheduleControlInput) -> ScheduleControlResult:
        """An operator's pause or resume. Resume is refused while the install is not active (its
        Schedules stay paused until enable); both refuse a schedule the version does not declare."""
        with activity_errors():
            found = await read.resolve_install(self.pool, inp.tenant_id, inp.extension)
            if found is None or inp.schedule not in {s.name for s in declared(found.manifest)}:
                raise NotFound(
                    f"{inp.extension} in tenant {inp.tenant_id} has no schedule {inp.schedule!r}",
                    details={"schedule": inp.schedule},
                )
            if inp.action is ScheduleAction.RESUME and not found.active:
                raise Conflict(
                    f"{inp.extension} is {found.status} in tenant {inp.tenant_id}; enable it first",
                    code=ErrorCode.INSTALL_NOT_ACTIVE,
                )
            handle = self.client.get_schedule_handle(
                install_schedule_id(inp.tenant_id, inp.extension, inp.schedule)
            )
            return await self._set_paused(inp, handle)

    async def _set_paused(self, inp: ScheduleControlInput, handle: ScheduleHandle) -> ScheduleControlResult:
        state = (await handle.describe()).schedule.state
        want = inp.action is ScheduleAction.PAUSE
        note = (inp.note or f"paused by {inp.actor}") if want else ""
        if state.paused == want and (not want or state.note == note):
            return ScheduleControlResult(
                tenant_id=inp.tenant_id,
                extension=inp.extension,
                schedule=inp.schedule,
                paused=want,
                changed=False,
                note=state.note or "",
            )
        if want:
            await handle.pause(note=note)
        else:
            await handle.unpause(note=f"resumed by {inp.actor}")
        return ScheduleControlResult(
            tenant_id=inp.tenant_id,
            extension=inp.extension,
            schedule=inp.schedule,
            paused=want,
            changed=True,
            note=note,
        )

    # --- run ------------------------------------------------------------------------------------

    @activity.defn(name="run_scheduled")
    async def run_scheduled(self, inp: ScheduledRunInput) -> ScheduledRunResult:
        """One call of the schedule's endpoint through a runner, with the install's grants."""
        request_id = f"sched-{activity.info().workflow_run_id}"
        with activity_errors():
            found = await read.resolve_install(self.pool, inp.tenant_id, inp.extension)
            skipped = _skip_reason(found, inp.schedule)
            if skipped or found is None:  # `found is None` always has a reason; mypy needs it said
                return self._skipped(inp, skipped, request_id)
            sched = next(s for s in declared(found.manifest) if s.name == inp.schedule)
            install = await read_gateway.gateway_install(self.pool, inp.tenant_id, inp.extension)
            if install is None or not install.active:
                return self._skipped(inp, "install is not active", request_id)
            async with self.pool.acquire() as conn:
                # Session-level advisory lock for (install, schedule): a run-now while a scheduled run is
                # still going (or two workers picking up retries) skips instead of overlapping.
                key = f"extplane-schedule:{install.install_id}:{sched.name}"
                if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
                    return self._skipped(inp, "the previous run is still going", request_id)
                try:
                    return await self._run(inp, sched, install, request_id)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)

    def _skipped(self, inp: ScheduledRunInput, reason: str, request_id: str) -> ScheduledRunResult:
        log.info("scheduled_run_skipped", tenant_id=inp.tenant_id, extension=inp.extension, reason=reason)
        return ScheduledRunResult(
            tenant_id=inp.tenant_id,
            extension=inp.extension,
            schedule=inp.schedule,
            outcome=RunOutcome.SKIPPED,
            reason=reason,
            request_id=request_id,
        )

    async def _run(
        self,
        inp: ScheduledRunInput,
        sched: DeclaredSchedule,
        install: read_gateway.GatewayInstall,
        request_id: str,
    ) -> ScheduledRunResult:
        prepared = prepare(install, default_rps=1.0, default_burst=1)
        body = b"" if sched.body is None else json.dumps(sched.body, separators=(",", ":")).encode()
        envelope = prepared.envelope(
            request_id=request_id,
            method=sched.method,
            path=sched.path,
            query="",
            headers=[("content-type", "application/json")] if body else [],
            body_b64=base64.b64encode(body),
            user=None,  # no user: a schedule acts for the install, not for a person
        )
        started = time.perf_counter()
        # A failure to reach the runner raises (connect errors): the activity is retried, and nothing
        # ran. Once the request may have been written, a lost connection or a timeout is an outcome,
        # never a retry: the guest may have run, and a scheduled call is not resent.
        try:
            response = await self._post(
                envelope,
                {
                    RUNNER_AUTH_HEADER: self._auth,
                    "content-type": "application/json",
                    **_header_lines(prepared.runner_headers),
                },
                httpx.Timeout(prepared.timeout_ms / 1000.0 + RUNNER_MARGIN_S, connect=5.0),
            )
            answer = _answer(response)
            status, logged, outcome, reason = _outcome(response.status_code, answer)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except httpx.TimeoutException:
            answer = ExecuteResponse()
            status, logged, outcome, reason = 504, "timeout", RunOutcome.ERROR, "runner_timeout"
        except httpx.TransportError:
            answer = ExecuteResponse()
            status, logged, outcome, reason = (
                502,
                "upstream_error",
                RunOutcome.ERROR,
                "runner_connection_lost",
            )
        duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
        fuel = answer.metrics.fuel_consumed if answer.metrics is not None else None
        with activity_errors():
            await write.record_execution(
                self.pool,
                request_id=request_id,
                tenant_id=install.tenant_id,
                extension_name=install.extension,
                version=install.version,
                install_id=install.install_id,
                method=sched.method,
                endpoint=sched.path,
                status=status,
                outcome=logged,
                duration_ms=duration_ms,
                principal=f"schedule:{sched.name}",
                fuel_consumed=fuel,
            )
        log.info(
            "scheduled_run",
            tenant_id=install.tenant_id,
            extension=install.extension,
            schedule=sched.name,
            request_id=request_id,
            status=status,
            outcome=outcome.value,
        )
        return ScheduledRunResult(
            tenant_id=inp.tenant_id,
            extension=inp.extension,
            schedule=inp.schedule,
            outcome=outcome,
            reason=reason,
            request_id=request_id,
            install_id=install.install_id,
            version=install.version,
            status=status,
            duration_ms=duration_ms,
            fuel_consumed=fuel,
            body_preview=_preview(answer.body_b64),
        )


def _skip_reason(found: read.ResolvedInstall | None, schedule: str) -> str:
    if found is None:
        return "not installed"
    if not found.active:
        return f"install is {found.status if found.status != 'active' else 'on a revoked version'}"
    if schedule not in {s.name for s in declared(found.manifest)}:
        return f"version {found.version} does not declare schedule {schedule!r}"
    return ""


def _answer(response: httpx.Response) -> ExecuteResponse:
    try:
        return ExecuteResponse.model_validate_json(response.content)
    except ValueError:
        # Not a runner answer (a proxy's error page): classified by its HTTP status alone.
        return ExecuteResponse()


def _preview(body_b64: str) -> str:
    if not body_b64:
        return ""
    raw: Any = base64.b64decode(body_b64)[: MAX_RESULT_BODY_CHARS * 4]
    return str(raw.decode("utf-8", "replace"))[:MAX_RESULT_BODY_CHARS]
