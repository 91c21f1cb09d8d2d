"""A trust-key revocation files each quarantine under the install's TenantId (one child workflow per
install, fixed id), and a second revocation run quarantines nothing twice."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client, WorkflowExecutionStatus

from bundles.blobstore import FilesystemBlobStore
from schema.payloads.install import InstallOperation as Op
from schema.temporal import WorkflowType, install_quarantine_workflow_id
from tests.workflows.helpers import (
    Installs,
    Invalidations,
    Signer,
    eventually,
    manifest,
    publish_version,
    unique_name,
)
from tests.workflows.test_trust import revoke
from workflows._common import ACTOR, CONTENT_HASH, EXTENSION_NAME, EXTENSION_VERSION, OPERATION, TENANT_ID

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def test_each_quarantine_is_a_child_under_the_install_tenant_and_runs_once(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    redis_client: aioredis.Redis,
) -> None:
    name = unique_name()
    v1 = await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.0.0"))
    installed = await installs.apply(name, Op.INSTALL, version="1.0.0")

    async with Invalidations(redis_client) as inv:
        result = await revoke(client, task_queue, signer.key_id)
        messages = await inv.wait(installs.tenant, 1)
    assert [q.install_id for q in result.quarantined_installs] == [installed.install_id]
    assert (messages[0]["extension"], messages[0]["revision"]) == (name, 2)

    child_id = install_quarantine_workflow_id(installs.tenant, name, signer.key_id, installed.install_id)
    desc = await client.get_workflow_handle(child_id).describe()
    assert (desc.workflow_type, desc.status) == (
        WorkflowType.INSTALL_QUARANTINE,
        WorkflowExecutionStatus.COMPLETED,
    )
    attrs = desc.typed_search_attributes
    assert (
        attrs.get(TENANT_ID),
        attrs.get(EXTENSION_NAME),
        attrs.get(EXTENSION_VERSION),
        attrs.get(CONTENT_HASH),
        attrs.get(OPERATION),
        attrs.get(ACTOR),
    ) == (installs.tenant, name, "1.0.0", v1.content_hash, "quarantine", "secops")

    # What an operator filtering Temporal UI by their tenant gets.
    query = f'TenantId = "{installs.tenant}" AND Operation = "quarantine"'

    async def listed() -> list[str] | None:
        ids = [w.id async for w in client.list_workflows(query)]
        return ids or None

    assert await eventually(listed, what="quarantine in visibility") == [child_id]
    rows = await db_pool.fetch(
        """SELECT workflow_id, tenant_id, content_hash, after FROM audit_events
           WHERE action = 'install_quarantined' AND tenant_id = $1""",
        installs.tenant,
    )
    assert [(r["workflow_id"], r["content_hash"]) for r in rows] == [(child_id, v1.content_hash)]
    assert rows[0]["after"]["key_id"] == signer.key_id and rows[0]["after"]["status"] == "quarantined"

    # A second run (same revocation) reports the quarantine but starts no second child and writes no row.
    first_run = desc.run_id
    again = await revoke(client, task_queue, signer.key_id)
    assert again.quarantined_installs == result.quarantined_installs
    assert (await client.get_workflow_handle(child_id).describe()).run_id == first_run
    runs = [w.run_id async for w in client.list_workflows(f'WorkflowId = "{child_id}"')]
    assert runs == [first_run]
    count = await db_pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'install_quarantined' AND tenant_id = $1",
        installs.tenant,
    )
    assert count == 1
    history = await db_pool.fetchval(
        """SELECT count(*) FROM install_history WHERE install_id = $1 AND operation = 'quarantine'""",
        installed.install_id,
    )
    assert history == 1
