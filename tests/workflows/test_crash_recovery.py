"""A worker process killed (SIGKILL) between two activities (or mid-soak of a rollout): a restarted
worker finishes the workflow, and every effect happens exactly once."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bundles.blobstore import FilesystemBlobStore
from core.crypto import Keyring
from schema.payloads.install import InstallOperation as Op
from schema.payloads.publish import PublishResult
from schema.payloads.rollout import RolloutPhase
from schema.temporal import WorkflowType, install_change_workflow_id, publish_workflow_id
from tests.workflows.helpers import (
    ROOT,
    Installs,
    Invalidations,
    Signer,
    build_bundle,
    eventually,
    manifest,
    stage,
    unique_name,
)
from tests.workflows.rollout_helpers import (
    NEW,
    Fleet,
    build_fleet,
    final,
    in_phase,
    start_rollout,
    versions,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(150)]


class WorkerProcess:
    """`python -m workflows.worker` as a child process, with this test's services and task queue."""

    def __init__(self, env: dict[str, str], queues: str, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workflows.worker", "--queues", queues],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def worker_env(
    temporal_address: str, db_url: str, redis_url: str, blob_root: Path, task_queue: str, keyring: Keyring
) -> dict[str, str]:
    keys = ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in sorted(keyring.keys.items()))
    return {
        **os.environ,
        "EXT_ENV": "test",
        "EXT_TEMPORAL_ADDRESS": temporal_address,
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_BLOB_DIR": str(blob_root),
        "EXT_MASTER_KEYS": keys,
        "EXT_CONTROL_TASK_QUEUE": task_queue,
        "EXT_ROTATION_SCHEDULE_CRON": "",
        "EXT_LOG_LEVEL": "warning",
    }


async def activity_events(handle: WorkflowHandle[Any, Any], kind: EventType.ValueType) -> Counter[str]:
    """How many events of `kind` (scheduled/completed) each activity type has in the history."""
    history = await handle.fetch_history()
    names: dict[int, str] = {}
    counts: Counter[str] = Counter()
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        if e.event_type == kind:
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                counts[names[e.event_id]] += 1
            else:
                counts[names[e.activity_task_completed_event_attributes.scheduled_event_id]] += 1
    return counts


async def test_publish_survives_worker_kill_between_activities(
    client: Client,
    task_queue: str,
    worker_env: dict[str, str],
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    name = unique_name()
    staged = stage(store, build_bundle(tmp_path, manifest(name)), signer)
    # The first worker serves only the control queue: the workflow stops at the precompile activity.
    first = WorkerProcess(worker_env, "control", tmp_path / "worker-1.log")
    second: WorkerProcess | None = None
    try:
        handle = await client.start_workflow(
            WorkflowType.PUBLISH,
            staged.publish_input(),
            id=publish_workflow_id(staged.content_hash),
            task_queue=task_queue,
            result_type=PublishResult,
        )

        async def waiting_for_compile() -> bool:
            scheduled = await activity_events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
            return scheduled["precompile_component"] == 1

        await eventually(waiting_for_compile, timeout=60, what="precompile scheduled")
        first.kill()
        second = WorkerProcess(worker_env, "control,compile", tmp_path / "worker-2.log")
        result = await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    assert result.name == name and result.already_published is False
    completed = await activity_events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert set(completed.values()) == {1}
    assert {"inspect_bundle", "precompile_component", "promote_bundle", "register_version"} <= set(completed)
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 1
    actions = [r["action"] for r in await db_pool.fetch("SELECT action FROM audit_events ORDER BY id")]
    assert actions == ["signature_verified", "published"]
    assert store.exists(result.bundle_key) and not store.exists(staged.staging_key)


async def test_install_survives_worker_kill_between_activities(
    client: Client,
    task_queue: str,
    worker_env: dict[str, str],
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    redis_client: aioredis.Redis,
) -> None:
    name = unique_name()
    staged = stage(store, build_bundle(tmp_path, manifest(name)), signer)
    first = WorkerProcess(worker_env, "control,compile", tmp_path / "worker-1.log")
    second: WorkerProcess | None = None
    try:
        await client.execute_workflow(
            WorkflowType.PUBLISH,
            staged.publish_input(),
            id=publish_workflow_id(staged.content_hash),
            task_queue=task_queue,
            result_type=PublishResult,
        )
        async with Invalidations(redis_client) as inv:
            update = asyncio.create_task(
                installs.apply(name, Op.INSTALL, version="1.0.0", request_id="crash-1")
            )
            child = client.get_workflow_handle(install_change_workflow_id(installs.tenant, name, "crash-1"))

            async def applied() -> bool:
                try:
                    done = await activity_events(child, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
                except Exception:  # the child does not exist yet
                    return False
                return done["apply_install_change"] == 1

            await eventually(applied, timeout=60, what="apply_install_change completed")
            first.kill()
            second = WorkerProcess(worker_env, "control", tmp_path / "worker-2.log")
            result = await asyncio.wait_for(update, timeout=90)
            messages = await inv.wait(installs.tenant, 1)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    assert (result.revision, result.version, result.changed) == (1, "1.0.0", True)
    completed = await activity_events(child, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert completed == Counter({"apply_install_change": 1, "record_audit": 1, "publish_invalidation": 1})
    assert await db_pool.fetchval("SELECT count(*) FROM install_history") == 1
    assert await db_pool.fetchval("SELECT revision FROM installs") == 1
    installs_audit = await db_pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'install'")
    assert installs_audit == 1
    assert {m["revision"] for m in messages} == {1}


async def test_rollout_resumes_after_worker_kill_mid_soak(
    client: Client,
    task_queue: str,
    worker_env: dict[str, str],
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    first = WorkerProcess(worker_env, "control,compile", tmp_path / "worker-1.log")
    second: WorkerProcess | None = None
    fleet: Fleet | None = None
    try:
        fleet = await build_fleet(client, task_queue, store, signer, tmp_path, 4)
        handle = await start_rollout(fleet, waves=["1", "100%"], soak_seconds=4.0)
        await wait_for(handle, in_phase(RolloutPhase.SOAKING, wave=0), what="first wave soaking")
        first.kill()  # the soak timer is Temporal's: it fires with no worker alive
        second = WorkerProcess(worker_env, "control", tmp_path / "worker-2.log")
        done = await asyncio.wait_for(final(handle), timeout=90)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        if fleet is not None:
            await fleet.close()

    assert (done.state, done.wave, done.upgraded) == (RolloutPhase.COMPLETED, 2, 4)
    assert set((await versions(db_pool, fleet.name)).values()) == {NEW}
    # Each install was upgraded exactly once: the replayed wave re-sent nothing new.
    upgrades = await db_pool.fetchval("SELECT count(*) FROM install_history WHERE operation = 'upgrade'")
    assert upgrades == 4
