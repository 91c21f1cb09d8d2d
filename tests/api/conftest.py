"""Fixtures of the operator-API tests: settings over the session services, the ASGI app behind an
httpx client, a real in-process worker (every control-plane workflow) on this test's task queue, and
helpers to mint tokens and signed bundles."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.auth import token_hash
from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from bundles.blobstore import FilesystemBlobStore
from bundles.hashing import content_hash
from bundles.inspect import inspect_bundle
from bundles.signing import sign_bundle
from core.codec import data_converter
from core.crypto import Keyring
from core.temporal import connect_temporal
from schema.temporal import compile_task_queue_for
from tests.workflows.helpers import Signer, build_bundle, fixed_keyring, manifest, unique_name
from workflows.worker import build_workers, running_workers

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return fixed_keyring(1)


@pytest.fixture(scope="session")
async def temporal_client(temporal_address: str, keyring: Keyring) -> Client:
    return await connect_temporal(temporal_address, data_converter=data_converter(keyring))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_settings(**values: object) -> OperatorSettings:
    base: dict[str, object] = {
        "env": "test",
        "admin_token": ADMIN_TOKEN,
        "temporal_ui_url": os.environ.get("EXT_TEST_TEMPORAL_UI_URL", "http://127.0.0.1:8233"),
        "blob_dir": None,
        "wait_seconds": 45.0,
        "token_cache_seconds": 0.0,
    }
    base.update(values)
    return OperatorSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(
    db_url: str, temporal_address: str, task_queue: str, data_dir: Path, keyring: Keyring
) -> OperatorSettings:
    master = ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in keyring.keys.items())
    return make_settings(
        database_url=db_url,
        temporal_address=temporal_address,
        control_task_queue=task_queue,
        data_dir=data_dir,
        master_keys=master,
    )


@pytest.fixture
async def app(settings: OperatorSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.resources.aclose()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api", timeout=60) as c:
        yield c


@asynccontextmanager
async def control_workers(
    client: Client,
    task_queue: str,
    *,
    pool: asyncpg.Pool,
    data_dir: Path,
    redis_url: str,
    keyring: Keyring,
) -> AsyncIterator[None]:
    """Every control-plane workflow and activity (workflows.worker) on `task_queue`, sharing the API's
    blob root so the staged upload is what the publish workflow reads; secrets held with `keyring`."""
    redis = aioredis.Redis.from_url(redis_url)
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="api-test-compile")
    workers = build_workers(
        client,
        control_task_queue=task_queue,
        compile_task_queue=compile_task_queue_for(task_queue),
        queues=("control", "compile"),
        pool=pool,
        store=FilesystemBlobStore(data_dir / "blobs"),
        redis=redis,
        keyring=keyring,
        compile_executor=executor,
    )
    try:
        async with running_workers(workers):
            yield
    finally:
        executor.shutdown(wait=True)
        await redis.aclose()


@pytest.fixture
async def worker(
    temporal_client: Client,
    task_queue: str,
    db_pool: asyncpg.Pool,
    data_dir: Path,
    redis_url: str,
    keyring: Keyring,
) -> AsyncIterator[None]:
    async with control_workers(
        temporal_client, task_queue, pool=db_pool, data_dir=data_dir, redis_url=redis_url, keyring=keyring
    ):
        yield


async def insert_token(
    pool: asyncpg.Pool,
    token: str,
    *,
    scopes: list[str],
    tenant_id: str | None = None,
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> str:
    """Test set-up only: a token row written directly (the API itself writes through CreateToken)."""
    token_id = await pool.fetchval(
        """INSERT INTO api_tokens (token_hash, tenant_id, scopes, expires_at, revoked_at)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        token_hash(token),
        tenant_id,
        scopes,
        expires_at,
        revoked_at,
    )
    return str(token_id)


def new_token() -> str:
    return "ext_test_" + uuid.uuid4().hex


@dataclass(frozen=True)
class SignedBundle:
    data: bytes
    content_hash: str
    signature: str  # the JSON signature document

    def headers(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return {
            **bearer(token),
            "x-content-hash": self.content_hash,
            "x-bundle-signature": base64.b64encode(self.signature.encode()).decode(),
            "content-type": "application/octet-stream",
        }


def signed_bundle(
    tmp: Path, signer: Signer, name: str, version: str = "1.0.0", **extra: object
) -> SignedBundle:
    data = build_bundle(tmp, manifest(name, version, publisher=signer.publisher, **extra))
    digest = content_hash(data)
    m = inspect_bundle(data, check_wasm=False).manifest
    return SignedBundle(
        data=data,
        content_hash=digest,
        signature=sign_bundle(signer.private, content_hash=digest, manifest=m).dumps(),
    )


async def trust_via_api(api: httpx.AsyncClient, signer: Signer) -> dict[str, object]:
    resp = await api.post(
        "/v1/trust/keys", json={"publisher": signer.publisher, "public_key_pem": signer.pem}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def publish(api: httpx.AsyncClient, tmp: Path, signer: Signer, name: str, version: str) -> None:
    bundle = signed_bundle(tmp, signer, name, version)
    resp = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
    assert resp.status_code == 200, resp.text


@pytest.fixture
async def published(api: httpx.AsyncClient, worker: None, tmp_path: Path) -> str:
    signer = Signer("acme")
    await trust_via_api(api, signer)
    name = unique_name()
    for version in ("1.0.0", "1.1.0"):
        await publish(api, tmp_path, signer, name, version)
    return name


@pytest.fixture
async def tenant(temporal_client: Client) -> AsyncIterator[str]:
    t = f"t-{uuid.uuid4().hex[:10]}"
    yield t
    # The install entity workflows are long-lived: end them with the test.
    async for wf in temporal_client.list_workflows(f"WorkflowId STARTS_WITH 'install/{t}/'"):
        try:
            await temporal_client.get_workflow_handle(wf.id).terminate("test finished")
        except RPCError:
            pass


async def assert_no_workflow(client: Client, workflow_id: str) -> None:
    """Temporal has no workflow with this id, running or closed (describe reads it by id, so unlike a
    visibility listing it is never behind)."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND, exc
        return
    raise AssertionError(f"workflow {workflow_id} exists: {desc.status}")
