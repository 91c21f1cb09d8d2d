"""Builders shared by the control-plane tests: keyrings, signers, bundles, staged uploads, polling."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from bundles.blobstore import BlobStore, staging_key
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from bundles.signing import generate_keypair, key_id, public_key_to_pem, sign_bundle
from core.crypto import Keyring
from registry import write
from schema.manifest import parse_manifest
from schema.payloads.install import InstallChangeResult, InstallInput, InstallOperation, InstallRequest
from schema.payloads.notify import INVALIDATE_CHANNEL
from schema.payloads.publish import PublishInput, PublishResult
from schema.temporal import INSTALL_APPLY_UPDATE, WorkflowType, install_workflow_id, publish_workflow_id

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = (ROOT / "tests" / "bundles" / "fixtures" / "handler.wasm").read_bytes()
HISTORIES = Path(__file__).resolve().parent / "histories"

T = TypeVar("T")


def fixed_keyring(*versions: int) -> Keyring:
    """A deterministic keyring (so captured histories stay decodable by the replay test)."""
    return Keyring(
        {v: hashlib.sha256(f"extplane-test-master-key-{v}".encode()).digest() for v in versions or (1,)}
    )


@dataclass
class Signer:
    """A publisher's Ed25519 key pair."""

    publisher: str

    def __post_init__(self) -> None:
        self.private, self.public = generate_keypair()
        self.key_id = key_id(self.public)
        self.pem = public_key_to_pem(self.public).decode()

    async def trust(self, pool: asyncpg.Pool) -> None:
        await write.add_trust_key(
            pool,
            key_id=self.key_id,
            publisher=self.publisher,
            public_key_pem=self.pem,
            expires_at=None,
            added_by="test",
        )


def unique_name(prefix: str = "com.test") -> str:
    return f"{prefix}.ext{uuid.uuid4().hex[:10]}"


def manifest(name: str, version: str = "1.0.0", publisher: str = "acme", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "publisher": publisher,
        "version": version,
        "runtime": "wasm-component@1",
        "capabilities": ["cap:log.emit", "cap:storage.kv"],
        "api": {
            "endpoints": [{"method": "GET", "path": "/status"}, {"method": "POST", "path": "/items/:id"}]
        },
    }
    doc.update(extra)
    return doc


def build_bundle(tmp: Path, doc: dict[str, Any], *, wasm: bytes = COMPONENT) -> bytes:
    src = tmp / uuid.uuid4().hex
    (src / "dist").mkdir(parents=True)
    (src / "manifest.json").write_text(json.dumps(doc))
    (src / "dist" / "main.wasm").write_bytes(wasm)
    return pack_directory(src)


@dataclass(frozen=True)
class Staged:
    data: bytes
    content_hash: str
    staging_key: str
    signature: str

    def publish_input(self, actor: str = "tester") -> PublishInput:
        return PublishInput(
            staging_key=self.staging_key,
            content_hash=self.content_hash,
            signature=self.signature,
            actor=actor,
        )


def stage(
    store: BlobStore, data: bytes, signer: Signer, *, signed_doc: dict[str, Any] | None = None
) -> Staged:
    """Put bundle bytes under a fresh staging key and sign them (or `signed_doc`, to forge a mismatch)."""
    digest = content_hash(data)
    key = staging_key(uuid.uuid4().hex)
    store.put(key, data)
    m = parse_manifest(signed_doc) if signed_doc is not None else None
    if m is None:
        from bundles.inspect import inspect_bundle

        m = inspect_bundle(data, check_wasm=False).manifest
    sig = sign_bundle(signer.private, content_hash=digest, manifest=m).dumps()
    return Staged(data=data, content_hash=digest, staging_key=key, signature=sig)


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def publish_version(
    client: Client, task_queue: str, store: BlobStore, signer: Signer, tmp: Path, doc: dict[str, Any]
) -> PublishResult:
    staged = stage(store, build_bundle(tmp, doc), signer)
    result: PublishResult = await client.execute_workflow(
        WorkflowType.PUBLISH,
        staged.publish_input(),
        id=publish_workflow_id(staged.content_hash),
        task_queue=task_queue,
        result_type=PublishResult,
    )
    return result


@dataclass
class Installs:
    """Sends install Updates (update-with-start) for one tenant; terminates the entities it started."""

    client: Client
    task_queue: str
    tenant: str
    started: set[str] = field(default_factory=set)
    max_changes_per_run: int = 200

    def start_op(self, extension: str) -> WithStartWorkflowOperation[Any, Any]:
        wf_id = install_workflow_id(self.tenant, extension)
        self.started.add(wf_id)
        return WithStartWorkflowOperation(
            WorkflowType.INSTALL,
            InstallInput(
                tenant_id=self.tenant, extension=extension, max_changes_per_run=self.max_changes_per_run
            ),
            id=wf_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def apply(self, extension: str, operation: InstallOperation, **fields: Any) -> InstallChangeResult:
        req = InstallRequest(
            request_id=fields.pop("request_id", uuid.uuid4().hex), operation=operation, **fields
        )
        result: InstallChangeResult = await self.client.execute_update_with_start_workflow(
            INSTALL_APPLY_UPDATE,
            req,
            start_workflow_operation=self.start_op(extension),
            result_type=InstallChangeResult,
        )
        return result

    async def failure(self, extension: str, operation: InstallOperation, **fields: Any) -> ApplicationError:
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await self.apply(extension, operation, **fields)
        cause = info.value.cause
        assert isinstance(cause, ApplicationError)
        return cause

    async def close(self) -> None:
        for wf_id in sorted(self.started):
            try:
                await self.client.get_workflow_handle(wf_id).terminate("test finished")
            except RPCError:
                pass  # already closed


class Invalidations:
    """Subscribes to the invalidation channel; `wait(tenant, n)` returns the first n messages of a tenant."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.pubsub = redis.pubsub()
        self.seen: list[dict[str, Any]] = []

    async def __aenter__(self) -> Invalidations:
        await self.pubsub.subscribe(INVALIDATE_CHANNEL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.unsubscribe()
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def wait(self, tenant: str, n: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is not None:
                self.seen.append(json.loads(msg["data"]))
            mine = [m for m in self.seen if m["tenant_id"] == tenant]
            return mine if len(mine) >= n else None

        return await eventually(enough, timeout=timeout, what=f"{n} invalidations of {tenant}")
