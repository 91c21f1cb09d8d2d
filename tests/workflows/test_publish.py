"""PublishWorkflow end to end against the real worker, Postgres and blob store."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import zstandard
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from bundles.blobstore import FilesystemBlobStore, artifact_key, bundle_key, staging_key
from bundles.hashing import content_hash
from runner.compile import engine_fingerprint
from schema.payloads.audit import AuditInput, AuditResult
from schema.payloads.namespaces import CheckNamespaceInput, CheckNamespaceResult
from schema.payloads.publish import (
    DiscardBlobsInput,
    DiscardBlobsResult,
    InspectBundleInput,
    InspectBundleResult,
    LookupPublishedInput,
    LookupPublishedResult,
    PrecompileInput,
    PrecompileResult,
    PromoteBundleInput,
    PromoteBundleResult,
    PublishResult,
    RegisterVersionInput,
    RegisterVersionResult,
)
from schema.payloads.sign_verify import VerifySignatureInput, VerifySignatureResult
from schema.temporal import WorkflowType, compile_task_queue_for, publish_workflow_id
from tests.workflows.helpers import COMPONENT, Signer, Staged, build_bundle, manifest, stage, unique_name
from workflows._common import CONTENT_HASH, EXTENSION_NAME, EXTENSION_VERSION, OPERATION
from workflows.publish import PublishWorkflow
from workflows.sign_verify import SignVerifyWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def run_publish(client: Client, task_queue: str, staged: Staged) -> PublishResult:
    result: PublishResult = await client.execute_workflow(
        WorkflowType.PUBLISH,
        staged.publish_input(),
        id=publish_workflow_id(staged.content_hash),
        task_queue=task_queue,
        result_type=PublishResult,
    )
    return result


async def publish_failure(client: Client, task_queue: str, staged: Staged) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await run_publish(client, task_queue, staged)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def registry_counts(pool: asyncpg.Pool, name: str) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM extensions WHERE name = $1) AS e,
                  (SELECT count(*) FROM versions v JOIN extensions x ON x.id = v.extension_id
                   WHERE x.name = $1) AS v,
                  (SELECT count(*) FROM bundles) AS b""",
        name,
    )
    assert row is not None
    return row["e"], row["v"], row["b"]


async def test_publish_registers_verified_precompiled_version(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    name = unique_name()
    staged = stage(store, build_bundle(tmp_path, manifest(name)), signer)

    result = await run_publish(client, task_queue, staged)

    assert (result.name, result.version, result.publisher) == (name, "1.0.0", "acme")
    assert result.content_hash == staged.content_hash
    assert result.signer_key_id == signer.key_id
    assert result.already_published is False
    assert result.bundle_key == bundle_key(staged.content_hash)
    assert store.get(result.bundle_key) == staged.data
    assert result.artifact_key == artifact_key(staged.content_hash, engine_fingerprint())
    assert store.size(result.artifact_key) > 0
    assert not store.exists(staged.staging_key)
    row = await db_pool.fetchrow(
        """SELECT v.status, v.capabilities, b.signer_key_id, b.precompiled, b.storage_key
           FROM versions v JOIN bundles b USING (content_hash) WHERE v.content_hash = $1""",
        staged.content_hash,
    )
    assert row is not None
    assert row["status"] == "verified"
    assert row["signer_key_id"] == signer.key_id
    assert row["storage_key"] == result.bundle_key
    assert row["precompiled"][engine_fingerprint()]["key"] == result.artifact_key
    assert set(row["capabilities"]) >= {"cap:log.emit", "cap:storage.kv", "cap:context.read"}
    endpoints = await db_pool.fetch(
        """SELECT a.method, a.path FROM api_endpoints a JOIN versions v ON v.id = a.version_id
           WHERE v.content_hash = $1 ORDER BY a.path""",
        staged.content_hash,
    )
    assert [(r["method"], r["path"]) for r in endpoints] == [("POST", "/items/:id"), ("GET", "/status")]
    actions = await db_pool.fetch(
        "SELECT action FROM audit_events WHERE content_hash = $1 ORDER BY id", staged.content_hash
    )
    assert [r["action"] for r in actions] == ["signature_verified", "published"]
    desc = await client.get_workflow_handle(publish_workflow_id(staged.content_hash)).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(CONTENT_HASH) == staged.content_hash
    assert attrs.get(EXTENSION_NAME) == name
    assert attrs.get(EXTENSION_VERSION) == "1.0.0"
    assert attrs.get(OPERATION) == "publish"


async def test_same_bundle_twice_gives_one_version(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    name = unique_name()
    data = build_bundle(tmp_path, manifest(name))
    first = await run_publish(client, task_queue, stage(store, data, signer))
    again = stage(store, data, signer)

    second = await run_publish(client, task_queue, again)

    assert second.already_published is True
    assert (second.name, second.version, second.content_hash) == (
        first.name,
        first.version,
        first.content_hash,
    )
    assert second.verified_at == first.verified_at
    assert await registry_counts(db_pool, name) == (1, 1, 1)
    assert not store.exists(again.staging_key)
    assert store.get(first.bundle_key) == data


async def test_same_version_other_bytes_is_version_exists_and_leaves_nothing(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    name = unique_name()
    await run_publish(client, task_queue, stage(store, build_bundle(tmp_path, manifest(name)), signer))
    other_bytes = build_bundle(tmp_path, manifest(name, limits={"timeout_ms": 1234, "memory_mb": 64}))
    other = stage(store, other_bytes, signer)

    err = await publish_failure(client, task_queue, other)

    assert err.type == "version_exists"
    assert "already published" in err.message
    assert await registry_counts(db_pool, name) == (1, 1, 1)
    assert not store.exists(bundle_key(other.content_hash))
    assert not store.exists(other.staging_key)


async def test_untrusted_signature_fails_without_rows_or_blobs(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    tmp_path: Path,
) -> None:
    name = unique_name()
    stranger = Signer("acme")  # never added to trust_keys
    staged = stage(store, build_bundle(tmp_path, manifest(name)), stranger)

    err = await publish_failure(client, task_queue, staged)

    assert err.type == "untrusted_key"
    assert await registry_counts(db_pool, name) == (0, 0, 0)
    assert not store.exists(bundle_key(staged.content_hash))
    assert not store.exists(artifact_key(staged.content_hash, engine_fingerprint()))
    assert not store.exists(staged.staging_key)
    audit = await db_pool.fetch("SELECT action, after FROM audit_events ORDER BY id")
    assert [r["action"] for r in audit] == ["signature_rejected", "publish_rejected"]
    assert audit[1]["after"]["error"] == "untrusted_key"


async def test_signature_of_another_version_is_refused(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    name = unique_name()
    data = build_bundle(tmp_path, manifest(name, version="2.0.0"))
    staged = stage(store, data, signer, signed_doc=manifest(name, version="1.0.0"))

    err = await publish_failure(client, task_queue, staged)

    assert err.type == "signature_invalid"
    assert await registry_counts(db_pool, name) == (0, 0, 0)


async def test_declared_hash_must_match_bytes(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    staged = stage(store, build_bundle(tmp_path, manifest(unique_name())), signer)
    lying = Staged(
        data=staged.data,
        content_hash="sha256:" + uuid.uuid4().hex + uuid.uuid4().hex,
        staging_key=staged.staging_key,
        signature=staged.signature,
    )

    err = await publish_failure(client, task_queue, lying)

    assert err.type == "hash_mismatch"
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 0
    assert not store.exists(staged.staging_key)


async def test_invalid_manifest_is_rejected_by_field(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> None:
    doc = {**manifest(unique_name()), "capabilities": ["cap:teleport"]}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, body in (("manifest.json", json.dumps(doc).encode()), ("dist/main.wasm", COMPONENT)):
            info = tarfile.TarInfo(path)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    data = zstandard.ZstdCompressor().compress(raw.getvalue())
    key = staging_key(uuid.uuid4().hex)
    store.put(key, data)
    staged = Staged(data=data, content_hash=content_hash(data), staging_key=key, signature="{}")

    err = await publish_failure(client, task_queue, staged)

    assert err.type == "invalid_manifest"
    assert "capabilities[0]" in err.message
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 0


async def test_a_clash_at_registration_compensates_every_blob_written(
    client: Client, task_queue: str
) -> None:
    """Two publishes of one name@version race past the lookup; the loser's registration fails inside
    the transaction. Stub activities (same names) record what the compensation deletes."""
    digest = "sha256:" + uuid.uuid4().hex * 2
    discarded: list[str] = []
    audited: list[str] = []

    @activity.defn(name="inspect_bundle")
    async def inspect(inp: InspectBundleInput) -> InspectBundleResult:
        return InspectBundleResult(
            content_hash=digest, size=1, name="com.acme.race", publisher="acme", version="1.0.0"
        )

    @activity.defn(name="lookup_published")
    async def lookup(inp: LookupPublishedInput) -> LookupPublishedResult:
        return LookupPublishedResult(status="new")

    @activity.defn(name="verify_signature")
    async def verify(inp: VerifySignatureInput) -> VerifySignatureResult:
        return VerifySignatureResult(signer_key_id="ed25519:k", verified_at=datetime.now(UTC))

    @activity.defn(name="check_namespace")
    async def check_namespace(inp: CheckNamespaceInput) -> CheckNamespaceResult:
        return CheckNamespaceResult(status="owner", namespace="com.acme")

    @activity.defn(name="precompile_component")
    async def precompile(inp: PrecompileInput) -> PrecompileResult:
        return PrecompileResult(
            artifact_key="artifacts/x/fp.cwasm", engine_fingerprint="fp", sha256="0", size=1
        )

    @activity.defn(name="promote_bundle")
    async def promote(inp: PromoteBundleInput) -> PromoteBundleResult:
        return PromoteBundleResult(bundle_key="bundles/x.tar.zst", size=1)

    @activity.defn(name="register_version")
    async def register(inp: RegisterVersionInput) -> RegisterVersionResult:
        raise ApplicationError(
            "com.acme.race@1.0.0 is already published", type="version_exists", non_retryable=True
        )

    @activity.defn(name="discard_blobs")
    async def discard(inp: DiscardBlobsInput) -> DiscardBlobsResult:
        discarded.extend(inp.keys)
        return DiscardBlobsResult(deleted=inp.keys)

    @activity.defn(name="record_audit")
    async def record(inp: AuditInput) -> AuditResult:
        audited.append(inp.action)
        return AuditResult(inserted=True)

    control = Worker(
        client,
        task_queue=task_queue,
        workflows=[PublishWorkflow, SignVerifyWorkflow],
        activities=[inspect, lookup, verify, check_namespace, promote, register, discard, record],
    )
    compile_worker = Worker(client, task_queue=compile_task_queue_for(task_queue), activities=[precompile])
    staged = Staged(data=b"", content_hash=digest, staging_key="staging/race.tar.zst", signature="{}")
    async with control, compile_worker:
        err = await publish_failure(client, task_queue, staged)

    assert err.type == "version_exists"
    assert sorted(discarded) == ["artifacts/x/fp.cwasm", "bundles/x.tar.zst", "staging/race.tar.zst"]
    assert audited == ["signature_verified", "publish_rejected"]
