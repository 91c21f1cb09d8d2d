"""Fixtures of the control-plane tests: a Temporal client with the payload codec, a blob store, a Redis
client and an in-process worker on a uuid task queue, over the session services of tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.client import Client

from bundles.blobstore import FilesystemBlobStore
from core.codec import data_converter
from core.crypto import Keyring
from core.temporal import connect_temporal
from schema.temporal import compile_task_queue_for
from tests.workflows.helpers import Installs, Signer, fixed_keyring
from workflows.worker import build_workers, running_workers


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return fixed_keyring(1)


@pytest.fixture(scope="session")
async def client(temporal_address: str, keyring: Keyring) -> Client:
    return await connect_temporal(temporal_address, data_converter=data_converter(keyring))


@pytest.fixture(scope="session")
async def raw_client(temporal_address: str) -> Client:
    """A client without the codec: sees payloads exactly as the server stores them."""
    return await connect_temporal(temporal_address)


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(blob_root: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(blob_root)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def signer(db_pool: asyncpg.Pool) -> Signer:
    s = Signer("acme")
    await s.trust(db_pool)
    return s


@pytest.fixture
async def worker(
    client: Client,
    task_queue: str,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    redis_client: aioredis.Redis,
    keyring: Keyring,
) -> AsyncIterator[None]:
    """Control and compile workers for this test's task queue, in this process."""
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-compile")
    workers = build_workers(
        client,
        control_task_queue=task_queue,
        compile_task_queue=compile_task_queue_for(task_queue),
        queues=("control", "compile"),
        pool=db_pool,
        store=store,
        redis=redis_client,
        keyring=keyring,
        compile_executor=executor,
    )
    async with running_workers(workers):
        yield
    executor.shutdown(wait=True)


@pytest.fixture
async def installs(client: Client, task_queue: str) -> AsyncIterator[Installs]:
    inst = Installs(client=client, task_queue=task_queue, tenant=f"t-{uuid.uuid4().hex[:10]}")
    yield inst
    await inst.close()
