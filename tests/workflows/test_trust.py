"""Trust policy workflows: adding a key, revoking one (re-verify, revoke versions, quarantine installs)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bundles.blobstore import FilesystemBlobStore
from registry import read
from schema.payloads.install import InstallOperation as Op
from schema.payloads.trust import AddTrustKeyInput, AddTrustKeyResult, RevokeKeyInput, RevokeKeyResult
from schema.temporal import WorkflowType, revoke_key_workflow_id, trust_key_workflow_id
from tests.workflows.helpers import (
    Installs,
    Invalidations,
    Signer,
    build_bundle,
    manifest,
    publish_version,
    stage,
    unique_name,
)
from tests.workflows.test_publish import publish_failure

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def add_key(client: Client, task_queue: str, inp: AddTrustKeyInput) -> AddTrustKeyResult:
    result: AddTrustKeyResult = await client.execute_workflow(
        WorkflowType.ADD_TRUST_KEY,
        inp,
        id=trust_key_workflow_id(inp.key_id),
        task_queue=task_queue,
        result_type=AddTrustKeyResult,
    )
    return result


async def revoke(client: Client, task_queue: str, key_id: str) -> RevokeKeyResult:
    result: RevokeKeyResult = await client.execute_workflow(
        WorkflowType.REVOKE_KEY,
        RevokeKeyInput(key_id=key_id, reason="leaked", actor="secops"),
        id=revoke_key_workflow_id(key_id),
        task_queue=task_queue,
        result_type=RevokeKeyResult,
    )
    return result


async def test_add_trust_key_is_idempotent_and_checks_the_key_id(
    client: Client, task_queue: str, worker: None, db_pool: asyncpg.Pool
) -> None:
    s = Signer("globex")
    inp = AddTrustKeyInput(key_id=s.key_id, publisher="globex", public_key_pem=s.pem, actor="admin")

    assert (await add_key(client, task_queue, inp)).added is True
    assert (await add_key(client, task_queue, inp)).added is False
    keys = await read.trust_keys(db_pool, [s.key_id])
    assert [(k.publisher, k.added_by) for k in keys] == [("globex", "admin")]

    other = Signer("globex")
    with pytest.raises(WorkflowFailureError) as info:
        await add_key(
            client,
            task_queue,
            AddTrustKeyInput(key_id=other.key_id, publisher="globex", public_key_pem=s.pem),
        )
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "untrusted_key"
    actions = await db_pool.fetch("SELECT action FROM audit_events ORDER BY id")
    assert [a["action"] for a in actions] == ["trust_key_added", "trust_key_noop", "trust_key_rejected"]


async def test_revoking_a_key_revokes_its_versions_and_quarantines_installs(
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
    name, untouched = unique_name(), unique_name()
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.0.0"))
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.1.0"))
    other_signer = Signer("acme")
    await other_signer.trust(db_pool)
    await publish_version(client, task_queue, store, other_signer, tmp_path, manifest(untouched, "1.0.0"))
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    await installs.apply(untouched, Op.INSTALL, version="1.0.0")

    async with Invalidations(redis_client) as inv:
        result = await revoke(client, task_queue, signer.key_id)
        messages = await inv.wait(installs.tenant, 1)

    assert sorted((v.name, v.version) for v in result.revoked_versions) == [(name, "1.0.0"), (name, "1.1.0")]
    assert [(q.tenant_id, q.extension, q.revision) for q in result.quarantined_installs] == [
        (installs.tenant, name, 2)
    ]
    assert messages[0]["extension"] == name and messages[0]["revision"] == 2
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and (got.status, got.version_status, got.active) == (
        "quarantined",
        "revoked",
        False,
    )
    kept = await read.resolve_active_install(db_pool, installs.tenant, untouched)
    assert kept is not None and kept.revision == 1
    actions = [
        r["action"]
        for r in await db_pool.fetch(
            "SELECT action FROM audit_events WHERE workflow_id = $1 ORDER BY id",
            revoke_key_workflow_id(signer.key_id),
        )
    ]
    # Bundles are processed in content-hash order, so only the first step's position is fixed; the
    # quarantine is audited by its per-install child workflow (tests/workflows/test_quarantine.py).
    assert actions[0] == "trust_key_revoked"
    assert sorted(actions[1:]) == ["version_revoked", "version_revoked"]

    # Nothing signed by the key is accepted any more, and a quarantined install cannot simply resume.
    staged = stage(store, build_bundle(tmp_path, manifest(name, "2.0.0")), signer)
    assert (await publish_failure(client, task_queue, staged)).type == "key_revoked"
    assert (await installs.failure(name, Op.ENABLE)).type == "version_not_installable"
    assert (await installs.failure(name, Op.UPGRADE, version="1.1.0")).type == "version_not_installable"

    again = await revoke(client, task_queue, signer.key_id)
    assert again.already_revoked is True
    # A second run reports what the revocation quarantined, but changes nothing again.
    assert again.quarantined_installs == result.quarantined_installs
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and got.revision == 2
