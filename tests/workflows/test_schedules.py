"""Scheduled invocations: an install's manifest schedules become Temporal Schedules that follow the
install (disable, enable, quarantine, upgrade, uninstall), and a run goes through a real runner with
the install's grants, into execution_log and the debug stream."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from bundles.blobstore import FilesystemBlobStore
from core.crypto import Keyring
from schema.errors import ErrorCode
from schema.payloads.install import InstallOperation as Op
from schema.payloads.schedules import (
    SYSTEM_PAUSE_NOTE,
    RunOutcome,
    ScheduleAction,
    ScheduleControlInput,
    ScheduleControlResult,
    ScheduledRunInput,
    ScheduledRunResult,
    ScheduleTrigger,
)
from schema.schedules import SchedulePolicy
from schema.temporal import (
    WorkflowType,
    compile_task_queue_for,
    install_schedule_id,
    manual_run_workflow_id,
    schedule_control_workflow_id,
)
from tests.gateway.conftest import HOSTILE, RUNNER_AUTH, RunnerProcess, free_port
from tests.workflows.helpers import (
    Installs,
    Signer,
    build_bundle,
    eventually,
    manifest,
    stage,
    unique_name,
)
from tests.workflows.test_trust import revoke
from workflows.worker import build_workers, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "endpoint": "POST /echo", "body": {"hello": "world"}}
HOURLY = {"name": "hourly", "cron": "15 * * * *", "endpoint": "GET /status"}
TRAP = {"name": "crash", "cron": "30 4 * * *", "endpoint": "GET /trap"}
ENDPOINTS = [
    {"method": "GET", "path": "/status"},
    {"method": "POST", "path": "/echo"},
    {"method": "GET", "path": "/trap"},
]


def scheduled(name: str, version: str, schedules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return manifest(name, version, api={"endpoints": extra.pop("endpoints", ENDPOINTS)}, schedules=schedules)


@pytest.fixture(scope="module")
def runner(
    tmp_path_factory: pytest.TempPathFactory, database_server_url: str, worker_id_num: int
) -> Iterator[RunnerProcess]:
    """A real runner over its own blob store; its debug stream goes to this xdist worker's Redis db."""
    parts = urlsplit(os.environ["EXT_TEST_REDIS_URL"])
    redis_url = urlunsplit(parts._replace(path=f"/{1 + worker_id_num}"))
    proc = RunnerProcess(
        tmp_path_factory.mktemp("sched-runner"),
        database_server_url,
        EXT_REDIS_URL=redis_url,
        EXT_MASTER_KEYS=Keyring.generate_entry(1),
    )
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def runner_store(runner: RunnerProcess) -> FilesystemBlobStore:
    return FilesystemBlobStore(runner.data_dir / "blobs")


@pytest.fixture
async def sched_worker(
    client: Client,
    task_queue: str,
    db_pool: asyncpg.Pool,
    runner: RunnerProcess,
    runner_store: FilesystemBlobStore,
    redis_client: aioredis.Redis,
    keyring: Keyring,
    request: pytest.FixtureRequest,
) -> AsyncIterator[None]:
    """Control and compile workers whose blob store is the runner's and whose scheduled runs call it;
    a test marks `policy` to run under other operator limits."""
    marker = request.node.get_closest_marker("policy")
    # `dead_runner`: an unreachable runner listed first, to fail over from.
    dead = f"http://127.0.0.1:{free_port()}," if request.node.get_closest_marker("dead_runner") else ""
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-compile")
    workers = build_workers(
        client,
        control_task_queue=task_queue,
        compile_task_queue=compile_task_queue_for(task_queue),
        queues=("control", "compile"),
        pool=db_pool,
        store=runner_store,
        redis=redis_client,
        keyring=keyring,
        compile_executor=executor,
        schedule_policy=marker.args[0] if marker else None,
        runner_url=dead + runner.url,
        runner_auth=RUNNER_AUTH,
    )
    async with running_workers(workers):
        yield
    executor.shutdown(wait=True)


@pytest.fixture
async def schedules_to_clean(client: Client) -> AsyncIterator[list[str]]:
    """Schedule ids a test may leave behind (a failed assertion before uninstall): deleted after it."""
    ids: list[str] = []
    yield ids
    for sid in ids:
        try:
            await client.get_schedule_handle(sid).delete()
        except RPCError:
            pass


async def publish(
    client: Client,
    task_queue: str,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp: Path,
    doc: dict[str, Any],
) -> None:
    from schema.payloads.publish import PublishResult
    from schema.temporal import publish_workflow_id

    staged = stage(store, build_bundle(tmp, doc, wasm=HOSTILE), signer)
    await client.execute_workflow(
        WorkflowType.PUBLISH,
        staged.publish_input(),
        id=publish_workflow_id(staged.content_hash),
        task_queue=task_queue,
        result_type=PublishResult,
    )


async def describe(client: Client, tenant: str, extension: str, schedule: str) -> ScheduleDescription:
    return await client.get_schedule_handle(install_schedule_id(tenant, extension, schedule)).describe()


async def gone(client: Client, tenant: str, extension: str, schedule: str) -> bool:
    try:
        await describe(client, tenant, extension, schedule)
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def run_now(
    client: Client, task_queue: str, tenant: str, extension: str, schedule: str
) -> ScheduledRunResult:
    result: ScheduledRunResult = await client.execute_workflow(
        WorkflowType.SCHEDULED_RUN,
        ScheduledRunInput(
            tenant_id=tenant,
            extension=extension,
            schedule=schedule,
            trigger=ScheduleTrigger.MANUAL,
            actor="op",
        ),
        id=manual_run_workflow_id(tenant, extension, schedule, uuid.uuid4().hex),
        task_queue=task_queue,
        result_type=ScheduledRunResult,
    )
    return result


async def control(
    client: Client, task_queue: str, tenant: str, extension: str, schedule: str, action: ScheduleAction
) -> ScheduleControlResult:
    request_id = uuid.uuid4().hex
    result: ScheduleControlResult = await client.execute_workflow(
        WorkflowType.SCHEDULE_CONTROL,
        ScheduleControlInput(
            tenant_id=tenant,
            extension=extension,
            schedule=schedule,
            action=action,
            actor="admin:test",
            request_id=request_id,
        ),
        id=schedule_control_workflow_id(tenant, extension, schedule, request_id),
        task_queue=task_queue,
        result_type=ScheduleControlResult,
    )
    return result


async def test_schedules_follow_the_install_from_install_to_uninstall(
    client: Client,
    task_queue: str,
    sched_worker: None,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    name, t = unique_name(), installs.tenant
    schedules_to_clean += [install_schedule_id(t, name, s) for s in ("nightly", "hourly")]
    await publish(
        client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY, HOURLY])
    )
    await installs.apply(name, Op.INSTALL, version="1.0.0")

    nightly = await describe(client, t, name, "nightly")
    # Temporal keeps a cron as calendar specs: its next fire times show what it understood.
    assert {(n.hour, n.minute) for n in nightly.info.next_action_times} == {(3, 0)}
    assert nightly.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert not nightly.schedule.state.paused
    action = nightly.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (WorkflowType.SCHEDULED_RUN.value, task_queue)
    hourly_next = (await describe(client, t, name, "hourly")).info.next_action_times
    assert {n.minute for n in hourly_next} == {15} and len({n.hour for n in hourly_next}) > 1

    # Disable pauses both (our note); an operator's pause of one outlives disable and enable.
    await control(client, task_queue, t, name, "hourly", ScheduleAction.PAUSE)
    await installs.apply(name, Op.DISABLE)
    state = (await describe(client, t, name, "nightly")).schedule.state
    assert (state.paused, state.note) == (True, SYSTEM_PAUSE_NOTE)
    assert (await describe(client, t, name, "hourly")).schedule.state.note == "paused by admin:test"
    await installs.apply(name, Op.ENABLE)
    assert not (await describe(client, t, name, "nightly")).schedule.state.paused
    hourly = (await describe(client, t, name, "hourly")).schedule.state
    assert (hourly.paused, hourly.note) == (True, "paused by admin:test")
    resumed = await control(client, task_queue, t, name, "hourly", ScheduleAction.RESUME)
    assert (resumed.paused, resumed.changed) == (False, True)
    assert not (await describe(client, t, name, "hourly")).schedule.state.paused

    await installs.apply(name, Op.UNINSTALL)
    assert await gone(client, t, name, "nightly") and await gone(client, t, name, "hourly")


async def test_resume_of_a_disabled_install_and_an_unknown_schedule_are_refused(
    client: Client,
    task_queue: str,
    sched_worker: None,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    name, t = unique_name(), installs.tenant
    schedules_to_clean.append(install_schedule_id(t, name, "nightly"))
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    await installs.apply(name, Op.DISABLE)
    for schedule, action, code in [
        ("nightly", ScheduleAction.RESUME, ErrorCode.INSTALL_NOT_ACTIVE),
        ("weekly", ScheduleAction.PAUSE, ErrorCode.NOT_FOUND),
    ]:
        with pytest.raises(WorkflowFailureError) as info:
            await control(client, task_queue, t, name, schedule, action)
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == code.value
    assert (await describe(client, t, name, "nightly")).schedule.state.note == SYSTEM_PAUSE_NOTE


async def test_upgrade_dropping_a_scheduled_endpoint_needs_drop_schedules(
    client: Client,
    task_queue: str,
    sched_worker: None,
    db_pool: asyncpg.Pool,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    name, t = unique_name(), installs.tenant
    schedules_to_clean += [install_schedule_id(t, name, s) for s in ("nightly", "hourly")]
    await publish(
        client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY, HOURLY])
    )
    # 1.1.0 drops POST /echo (and with it the nightly schedule); 1.2.0 keeps every endpoint but drops
    # the hourly schedule, which is the author's call and needs no consent.
    without_echo = [e for e in ENDPOINTS if e["path"] != "/echo"]
    await publish(
        client,
        task_queue,
        runner_store,
        signer,
        tmp_path,
        scheduled(name, "1.1.0", [HOURLY], endpoints=without_echo),
    )
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.2.0", [NIGHTLY]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")

    refused = await installs.failure(name, Op.UPGRADE, version="1.1.0")
    assert refused.type == ErrorCode.SCHEDULE_ENDPOINT_DROPPED.value
    assert "nightly" in refused.message
    assert (
        await db_pool.fetchval(
            "SELECT v.version FROM installs i JOIN versions v ON v.id = i.version_id WHERE i.tenant_id = $1",
            t,
        )
    ) == "1.0.0"
    assert not await gone(client, t, name, "nightly")

    moved = await installs.apply(name, Op.UPGRADE, version="1.1.0", drop_schedules=["nightly"])
    assert moved.version == "1.1.0"
    assert await gone(client, t, name, "nightly")
    assert not await gone(client, t, name, "hourly")

    # Back to a version with POST /echo and only the nightly schedule: hourly goes, nightly returns.
    await installs.apply(name, Op.UPGRADE, version="1.2.0")
    assert await gone(client, t, name, "hourly")
    assert {
        (n.hour, n.minute) for n in (await describe(client, t, name, "nightly")).info.next_action_times
    } == {(3, 0)}
    await installs.apply(name, Op.UNINSTALL)


@pytest.mark.policy(SchedulePolicy(min_interval_s=600, max_per_tenant=2))
async def test_operator_limits_refuse_an_install_and_write_nothing(
    client: Client,
    task_queue: str,
    sched_worker: None,
    db_pool: asyncpg.Pool,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    t = installs.tenant
    frequent, many, fits = unique_name(), unique_name(), unique_name()
    every5 = {**HOURLY, "name": "often", "cron": "*/5 * * * *"}
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(frequent, "1.0.0", [every5]))
    await publish(
        client, task_queue, runner_store, signer, tmp_path, scheduled(fits, "1.0.0", [NIGHTLY, HOURLY])
    )
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(many, "1.0.0", [TRAP]))
    schedules_to_clean += [install_schedule_id(t, fits, s) for s in ("nightly", "hourly")]
    schedules_to_clean += [install_schedule_id(t, frequent, "often"), install_schedule_id(t, many, "crash")]

    refused = await installs.failure(frequent, Op.INSTALL, version="1.0.0")
    assert refused.type == ErrorCode.SCHEDULE_LIMIT_EXCEEDED.value
    assert "every 5 min" in refused.message and "10 min" in refused.message
    await installs.apply(fits, Op.INSTALL, version="1.0.0")  # two schedules: the tenant's limit
    over = await installs.failure(many, Op.INSTALL, version="1.0.0")
    assert over.type == ErrorCode.SCHEDULE_LIMIT_EXCEEDED.value
    assert "3 schedules" in over.message
    rows = await db_pool.fetch(
        "SELECT e.name FROM installs i JOIN extensions e ON e.id = i.extension_id WHERE i.tenant_id = $1", t
    )
    assert [r["name"] for r in rows] == [fits]
    assert await gone(client, t, frequent, "often") and await gone(client, t, many, "crash")
    await installs.apply(fits, Op.UNINSTALL)


async def test_a_run_goes_through_the_runner_into_the_execution_log_and_debug_stream(
    client: Client,
    task_queue: str,
    sched_worker: None,
    db_pool: asyncpg.Pool,
    runner_store: FilesystemBlobStore,
    redis_client: aioredis.Redis,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    name, t = unique_name(), installs.tenant
    schedules_to_clean += [install_schedule_id(t, name, s) for s in ("nightly", "crash")]
    await publish(
        client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY, TRAP])
    )
    installed = await installs.apply(name, Op.INSTALL, version="1.0.0")

    ok = await run_now(client, task_queue, t, name, "nightly")
    assert (ok.outcome, ok.status, ok.version) == (RunOutcome.OK, 200, "1.0.0")
    assert json.loads(ok.body_preview) == {"hello": "world"}  # the schedule's body reached the guest
    row = await db_pool.fetchrow("SELECT * FROM execution_log WHERE request_id = $1", ok.request_id)
    assert row is not None
    assert (row["tenant_id"], row["extension_name"], str(row["install_id"])) == (
        t,
        name,
        installed.install_id,
    )
    assert (row["method"], row["endpoint"], row["status"], row["outcome"]) == ("POST", "/echo", 200, "ok")
    assert row["principal"] == "schedule:nightly" and row["fuel_consumed"] > 0

    # A trapping guest fails the run's workflow (red in Temporal UI), is logged, and its runner error
    # reaches the install's debug stream under the run's request id.
    with pytest.raises(WorkflowFailureError) as info:
        await run_now(client, task_queue, t, name, "crash")
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ErrorCode.SCHEDULED_RUN_FAILED.value
    assert "guest_trap" in cause.message
    failed = await db_pool.fetchrow(
        "SELECT * FROM execution_log WHERE tenant_id = $1 AND principal = 'schedule:crash'", t
    )
    assert failed is not None and failed["outcome"] == "upstream_error"

    async def trap_event() -> list[Any] | None:
        entries: list[Any] = await redis_client.xrange(f"ext-debug:{t}:{name}") or []
        found = [e for e in entries if e[1].get(b"request_id", b"").decode() == failed["request_id"]]
        return found or None

    events = await eventually(trap_event, what="the trap's debug event")
    assert b"guest_trap" in events[0][1][b"message"]

    # Disabled: a run is skipped and calls nothing.
    await installs.apply(name, Op.DISABLE)
    skipped = await run_now(client, task_queue, t, name, "nightly")
    assert (skipped.outcome, skipped.reason) == (RunOutcome.SKIPPED, "install is disabled")
    count = await db_pool.fetchval("SELECT count(*) FROM execution_log WHERE tenant_id = $1", t)
    assert count == 2
    await installs.apply(name, Op.UNINSTALL)


async def test_the_schedule_itself_starts_a_run(
    client: Client,
    task_queue: str,
    sched_worker: None,
    db_pool: asyncpg.Pool,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    """Trigger the Temporal Schedule (as its cron would): its action starts ScheduledRun on our queue
    with the schedule's input, and the run lands in execution_log."""
    name, t = unique_name(), installs.tenant
    schedules_to_clean.append(install_schedule_id(t, name, "nightly"))
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    await client.get_schedule_handle(install_schedule_id(t, name, "nightly")).trigger()

    async def logged() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await db_pool.fetchrow(
            "SELECT * FROM execution_log WHERE tenant_id = $1 AND principal = 'schedule:nightly'", t
        )
        return row

    row = await eventually(logged, timeout=60, what="the scheduled run's execution_log row")
    assert (row["status"], row["outcome"], row["endpoint"]) == (200, "ok", "/echo")
    desc = await describe(client, t, name, "nightly")
    assert [a.action.workflow_id for a in desc.info.recent_actions if hasattr(a.action, "workflow_id")]
    await installs.apply(name, Op.UNINSTALL)


async def test_quarantine_pauses_an_installs_schedules(
    client: Client,
    task_queue: str,
    sched_worker: None,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    name, t = unique_name(), installs.tenant
    schedules_to_clean.append(install_schedule_id(t, name, "nightly"))
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    result = await revoke(client, task_queue, signer.key_id)
    assert [q.extension for q in result.quarantined_installs] == [name]
    state = (await describe(client, t, name, "nightly")).schedule.state
    assert (state.paused, state.note) == (True, SYSTEM_PAUSE_NOTE)
    skipped = await run_now(client, task_queue, t, name, "nightly")
    assert skipped.outcome is RunOutcome.SKIPPED


@pytest.mark.slow  # waits for the next minute boundary
@pytest.mark.timeout(150)
@pytest.mark.policy(SchedulePolicy(min_interval_s=60))
async def test_the_cron_fires_a_run(
    client: Client,
    task_queue: str,
    sched_worker: None,
    db_pool: asyncpg.Pool,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    """Every minute, under an operator limit of 60 s: Temporal itself starts the run at the next
    minute boundary (at most a minute away), nobody triggers it."""
    name, t = unique_name(), installs.tenant
    schedules_to_clean.append(install_schedule_id(t, name, "minutely"))
    minutely = {**NIGHTLY, "name": "minutely", "cron": "* * * * *"}
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [minutely]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")

    async def logged() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await db_pool.fetchrow(
            "SELECT * FROM execution_log WHERE tenant_id = $1 AND principal = 'schedule:minutely'", t
        )
        return row

    row = await eventually(logged, timeout=120, what="a cron-fired run")
    assert (row["status"], row["outcome"]) == (200, "ok")
    await installs.apply(name, Op.UNINSTALL)


@pytest.mark.dead_runner
async def test_a_run_fails_over_from_a_runner_it_cannot_reach(
    client: Client,
    task_queue: str,
    sched_worker: None,
    runner_store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    schedules_to_clean: list[str],
) -> None:
    """Runs go round robin over the worker's runners; one that refuses connections is skipped (nothing
    was sent to it), so every run lands on the live one, whichever it would have gone to first."""
    name, t = unique_name(), installs.tenant
    schedules_to_clean.append(install_schedule_id(t, name, "nightly"))
    await publish(client, task_queue, runner_store, signer, tmp_path, scheduled(name, "1.0.0", [NIGHTLY]))
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    for _ in range(2):
        ran = await run_now(client, task_queue, t, name, "nightly")
        assert (ran.outcome, ran.status) == (RunOutcome.OK, 200)
    await installs.apply(name, Op.UNINSTALL)
