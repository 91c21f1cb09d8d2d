"""Namespace ownership: admin registration and removal, and what the publish workflow lets through.

Real worker, Postgres, blob store and Temporal; the publishers are `cptest` and `cpother`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bundles.blobstore import FilesystemBlobStore, artifact_key, bundle_key
from core.crypto import Keyring
from registry import read_namespaces
from runner.compile import engine_fingerprint
from schema.namespaces import NamespacePolicy
from schema.payloads.namespaces import (
    RegisterNamespaceInput,
    RegisterNamespaceResult,
    RemoveNamespaceInput,
    RemoveNamespaceResult,
)
from schema.temporal import WorkflowType, compile_task_queue_for, publish_workflow_id
from tests.workflows.helpers import Signer, build_bundle, manifest, publish_version, stage
from tests.workflows.test_publish import publish_failure, registry_counts
from workflows.worker import build_workers, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


@pytest.fixture
async def cptest(db_pool: asyncpg.Pool) -> Signer:
    s = Signer("cptest")
    await s.trust(db_pool)
    return s


@pytest.fixture
async def cpother(db_pool: asyncpg.Pool) -> Signer:
    s = Signer("cpother")
    await s.trust(db_pool)
    return s


async def register(
    client: Client, task_queue: str, prefix: str, publisher: str, *, actor: str = "admin"
) -> RegisterNamespaceResult:
    # Tests share one Temporal server: a uuid id keeps parallel tests from attaching to each other.
    result: RegisterNamespaceResult = await client.execute_workflow(
        WorkflowType.REGISTER_NAMESPACE,
        RegisterNamespaceInput(prefix=prefix, publisher=publisher, actor=actor),
        id=f"namespace-add/{prefix}/{uuid.uuid4().hex}",
        task_queue=task_queue,
        result_type=RegisterNamespaceResult,
    )
    return result


async def remove(client: Client, task_queue: str, prefix: str) -> RemoveNamespaceResult:
    result: RemoveNamespaceResult = await client.execute_workflow(
        WorkflowType.REMOVE_NAMESPACE,
        RemoveNamespaceInput(prefix=prefix, actor="admin"),
        id=f"namespace-rm/{prefix}/{uuid.uuid4().hex}",
        task_queue=task_queue,
        result_type=RemoveNamespaceResult,
    )
    return result


async def scheduled_activities(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def test_a_publisher_cannot_publish_a_new_name_in_another_publishers_namespace(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    tmp_path: Path,
    cptest: Signer,
    cpother: Signer,
) -> None:
    await register(client, task_queue, "com.cpother", "cpother")
    staged = stage(store, build_bundle(tmp_path, manifest("com.cpother.squat", publisher="cptest")), cptest)

    err = await publish_failure(client, task_queue, staged)

    assert err.type == "namespace_owned"
    assert "com.cpother" in err.message and "cpother" in err.message
    assert err.non_retryable
    assert (await registry_counts(db_pool, "com.cpother.squat"))[:2] == (0, 0)
    assert await db_pool.fetchval("SELECT count(*) FROM bundles") == 0
    assert not store.exists(bundle_key(staged.content_hash))
    assert not store.exists(artifact_key(staged.content_hash, engine_fingerprint()))
    assert not store.exists(staged.staging_key)
    rejected = await db_pool.fetchrow(
        "SELECT after FROM audit_events WHERE action = 'publish_rejected' AND content_hash = $1",
        staged.content_hash,
    )
    assert rejected is not None and rejected["after"]["error"] == "namespace_owned"
    # Refused before anything was compiled or promoted (not only rolled back at registration).
    scheduled = await scheduled_activities(client, publish_workflow_id(staged.content_hash))
    assert "check_namespace" in scheduled
    assert not {"precompile_component", "promote_bundle", "register_version"} & set(scheduled)

    # The owner publishes in its namespace; a name equal to the prefix is covered too.
    ok = await publish_version(
        client, task_queue, store, cpother, tmp_path, manifest("com.cpother.squat", publisher="cpother")
    )
    assert (ok.name, ok.publisher, ok.claimed_namespace) == ("com.cpother.squat", "cpother", "")
    exact = stage(store, build_bundle(tmp_path, manifest("com.cpother", publisher="cptest")), cptest)
    assert (await publish_failure(client, task_queue, exact)).type == "namespace_owned"


async def test_the_first_publish_claims_an_unregistered_namespace(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    tmp_path: Path,
    cptest: Signer,
    cpother: Signer,
) -> None:
    first = await publish_version(
        client, task_queue, store, cpother, tmp_path, manifest("com.cpother.first", publisher="cpother")
    )

    assert first.claimed_namespace == "com.cpother"
    ns = await read_namespaces.namespace_of(db_pool, "com.cpother.anything")
    assert ns is not None and (ns.prefix, ns.publisher, ns.source) == ("com.cpother", "cpother", "claimed")
    row = await db_pool.fetchrow("SELECT after FROM audit_events WHERE action = 'published'")
    assert row is not None and row["after"]["namespace_claimed"] == "com.cpother"
    # A dot boundary: com.cpothers is another namespace, claimed by its own first publish.
    elsewhere = await publish_version(
        client, task_queue, store, cptest, tmp_path, manifest("com.cpothers.x", publisher="cptest")
    )
    assert elsewhere.claimed_namespace == "com.cpothers"
    intruder = manifest("com.cpother.intruder", publisher="cptest")
    assert (
        await publish_failure(client, task_queue, stage(store, build_bundle(tmp_path, intruder), cptest))
    ).type == ("namespace_owned")
    second = await publish_version(
        client, task_queue, store, cpother, tmp_path, manifest("com.cpother.second", publisher="cpother")
    )
    assert second.claimed_namespace == ""


async def test_a_name_already_published_stays_with_its_owner(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    tmp_path: Path,
    cptest: Signer,
    cpother: Signer,
) -> None:
    """cptest published com.shared.tool first (claiming com.shared); an admin then hands a longer
    prefix to cpother. cptest's existing name keeps working for cptest, new names there do not."""
    await publish_version(
        client, task_queue, store, cptest, tmp_path, manifest("com.shared.tool.cli", publisher="cptest")
    )
    await register(client, task_queue, "com.shared.tool", "cpother")

    upgrade = await publish_version(
        client,
        task_queue,
        store,
        cptest,
        tmp_path,
        manifest("com.shared.tool.cli", "2.0.0", publisher="cptest"),
    )
    assert upgrade.version == "2.0.0"
    fresh = stage(store, build_bundle(tmp_path, manifest("com.shared.tool.gui", publisher="cptest")), cptest)
    assert (await publish_failure(client, task_queue, fresh)).type == "namespace_owned"
    # Nor may the namespace owner take over cptest's published name.
    taken = stage(
        store,
        build_bundle(tmp_path, manifest("com.shared.tool.cli", "3.0.0", publisher="cpother")),
        cpother,
    )
    assert (await publish_failure(client, task_queue, taken)).type == "namespace_owned"
    # Outside the longer prefix, com.shared is still cptest's claim.
    await publish_version(
        client, task_queue, store, cptest, tmp_path, manifest("com.shared.other", publisher="cptest")
    )


async def test_admin_registration_is_audited_idempotent_and_exclusive(
    client: Client, task_queue: str, worker: None, db_pool: asyncpg.Pool
) -> None:
    first = await register(client, task_queue, "com.cpother", "cpother", actor="root")
    again = await register(client, task_queue, "com.cpother", "cpother", actor="root")
    assert (first.added, again.added) == (True, False)

    with pytest.raises(WorkflowFailureError) as info:
        await register(client, task_queue, "com.cpother", "cptest", actor="root")
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "conflict"
    with pytest.raises(WorkflowFailureError) as bad:
        await register(client, task_queue, "com", "cptest")
    assert isinstance(bad.value.cause, ApplicationError) and bad.value.cause.type == "invalid_request"

    listed = await read_namespaces.list_namespaces(db_pool)
    assert [(n.prefix, n.publisher, n.source, n.created_by) for n in listed] == [
        ("com.cpother", "cpother", "registered", "root")
    ]
    gone = await remove(client, task_queue, "com.cpother")
    assert (gone.removed, gone.publisher) == (True, "cpother")
    assert (await remove(client, task_queue, "com.cpother")).removed is False
    assert await read_namespaces.list_namespaces(db_pool) == []

    audit = await db_pool.fetch("SELECT actor, action, before, after FROM audit_events ORDER BY id")
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("root", "namespace_registered"),
        ("root", "namespace_noop"),
        ("root", "namespace_rejected"),
        ("admin", "namespace_rejected"),
        ("admin", "namespace_removed"),
        ("admin", "namespace_noop"),
    ]
    assert audit[0]["after"] == {"prefix": "com.cpother", "publisher": "cpother"}
    assert audit[2]["after"]["error"] == "conflict"
    assert audit[4]["before"] == {"prefix": "com.cpother", "publisher": "cpother"}


@pytest.fixture
async def strict_worker(
    client: Client,
    task_queue: str,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    redis_url: str,
    keyring: Keyring,
) -> AsyncIterator[None]:
    redis = aioredis.Redis.from_url(redis_url)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-compile")
    workers = build_workers(
        client,
        control_task_queue=task_queue,
        compile_task_queue=compile_task_queue_for(task_queue),
        queues=("control", "compile"),
        pool=db_pool,
        store=store,
        redis=redis,
        keyring=keyring,
        compile_executor=executor,
        namespace_policy=NamespacePolicy.STRICT,
    )
    async with running_workers(workers):
        yield
    executor.shutdown(wait=True)
    await redis.aclose()


async def test_strict_policy_refuses_unregistered_namespaces(
    client: Client,
    task_queue: str,
    strict_worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    tmp_path: Path,
    cpother: Signer,
) -> None:
    staged = stage(store, build_bundle(tmp_path, manifest("com.cpother.x", publisher="cpother")), cpother)
    err = await publish_failure(client, task_queue, staged)
    assert err.type == "namespace_unregistered"
    assert "extctl namespaces add com.cpother --publisher cpother" in err.message
    assert await read_namespaces.list_namespaces(db_pool) == []
    assert (await registry_counts(db_pool, "com.cpother.x"))[:2] == (0, 0)

    await register(client, task_queue, "com.cpother", "cpother")
    ok = await publish_version(
        client, task_queue, store, cpother, tmp_path, manifest("com.cpother.x", publisher="cpother")
    )
    assert (ok.name, ok.claimed_namespace) == ("com.cpother.x", "")
