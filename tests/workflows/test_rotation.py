"""Master key rotation: data keys re-wrapped under the newest master key; secrets still open."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client

from bundles.blobstore import FilesystemBlobStore
from core.codec import data_converter, seal_secrets
from core.crypto import Keyring, open_envelope
from core.temporal import connect_temporal
from registry import read
from schema.payloads.install import InstallOperation as Op
from schema.payloads.rotation import RotateMasterKeyInput, RotateMasterKeyResult
from schema.temporal import WorkflowType, compile_task_queue_for, rotate_master_key_workflow_id
from tests.workflows.helpers import Installs, Signer, fixed_keyring, manifest, publish_version, unique_name
from workflows.schedules import ensure_rotation_schedule
from workflows.worker import build_workers, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def test_rotation_rewraps_every_data_key(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    keyring: Keyring,
    temporal_address: str,
    redis_client: aioredis.Redis,
) -> None:
    names = [unique_name(), unique_name()]
    for name in names:
        await publish_version(client, task_queue, store, signer, tmp_path, manifest(name))
        await installs.apply(name, Op.INSTALL, version="1.0.0", secrets=seal_secrets(keyring, {"K": name}))
    assert {r["v"] for r in await db_pool.fetch("SELECT master_key_version AS v FROM install_data_keys")} == {
        1
    }

    rotated_ring = fixed_keyring(1, 2)
    rotated_client = await connect_temporal(temporal_address, data_converter=data_converter(rotated_ring))
    queue = f"{task_queue}-rot"
    executor = ThreadPoolExecutor(max_workers=1)
    workers = build_workers(
        rotated_client,
        control_task_queue=queue,
        compile_task_queue=compile_task_queue_for(queue),
        queues=("control",),
        pool=db_pool,
        store=store,
        redis=redis_client,
        keyring=rotated_ring,
        compile_executor=executor,
    )
    async with running_workers(workers):
        result = await rotated_client.execute_workflow(
            WorkflowType.ROTATE_MASTER_KEY,
            RotateMasterKeyInput(actor="ops", batch_size=1),
            id=f"{rotate_master_key_workflow_id(2)}-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            result_type=RotateMasterKeyResult,
        )
    executor.shutdown()

    assert (result.target_version, result.rewrapped) == (2, 2)
    assert {r["v"] for r in await db_pool.fetch("SELECT master_key_version AS v FROM install_data_keys")} == {
        2
    }
    for name in names:
        got = await read.resolve_install(db_pool, installs.tenant, name)
        assert got is not None
        envelope = await read.secret_envelope(db_pool, got.install_id)
        assert envelope is not None and envelope.master_key_version == 2
        assert open_envelope(rotated_ring, envelope) == {"K": name}
    audit = await db_pool.fetchrow(
        "SELECT actor, after FROM audit_events WHERE action = 'master_key_rotated'"
    )
    assert audit is not None and audit["actor"] == "ops" and audit["after"]["rewrapped"] == 2


async def test_rotation_schedule_is_created_once_and_updated(client: Client, task_queue: str) -> None:
    schedule_id = f"test-rotation-{uuid.uuid4().hex[:10]}"
    try:
        await ensure_rotation_schedule(
            client, cron="0 3 * * 0", task_queue=task_queue, schedule_id=schedule_id
        )
        await ensure_rotation_schedule(
            client, cron="30 4 * * *", task_queue=task_queue, schedule_id=schedule_id
        )
        desc = await client.get_schedule_handle(schedule_id).describe()
        spec = desc.schedule.spec
        action = desc.schedule.action
        assert action.workflow == WorkflowType.ROTATE_MASTER_KEY.value  # type: ignore[attr-defined]
        assert action.task_queue == task_queue  # type: ignore[attr-defined]
        assert [(c.hour[0].start, c.minute[0].start) for c in spec.calendars] == [
            (4, 30)
        ] or spec.cron_expressions == ["30 4 * * *"]
    finally:
        await client.get_schedule_handle(schedule_id).delete()
