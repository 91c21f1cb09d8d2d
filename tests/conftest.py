"""Session services for the whole suite, started by the same code as `extctl dev up` (cli.devstack).

The xdist controller (or a plain pytest process) brings up Postgres, Redis and the Temporal dev server
once, before workers start, under a per-run root in tests/.artifacts/ (so two runs never share or stop
each other's services) and publishes their URLs to workers through EXT_TEST_* variables.
`EXT_DATABASE_URL` / `EXT_REDIS_URL` / `EXT_TEMPORAL_ADDRESS`, when set, are used instead: tests then
create their own databases on that server and use their own Redis db index, never the dev data.

Isolation: every test gets a fresh database cloned from a migrated template, a Redis db index of its
xdist worker flushed before the test, and uuid task queues / workflow ids.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from cli.devstack.stack import Stack
from core.db import create_pool
from core.migrations import ensure_database, migrate

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
_STACK_ATTR = "_extplane_stack"
_KEYS = (
    "EXT_TEST_DATABASE_URL",
    "EXT_TEST_REDIS_URL",
    "EXT_TEST_TEMPORAL_ADDRESS",
    "EXT_TEST_TEMPORAL_UI_URL",
)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config) or all(os.environ.get(k) for k in _KEYS[:3]):
        return
    root = ARTIFACTS / f"stack-{os.getpid()}"
    stack = Stack(root, with_apps=False, auto_ports=True)
    info = stack.up()
    setattr(config, _STACK_ATTR, stack)
    # Workers inherit the environment of the controller; nothing has read these yet.
    os.environ["EXT_TEST_DATABASE_URL"] = info.env["EXT_DATABASE_URL"]
    os.environ["EXT_TEST_REDIS_URL"] = info.env["EXT_REDIS_URL"]
    os.environ["EXT_TEST_TEMPORAL_ADDRESS"] = info.env["EXT_TEMPORAL_ADDRESS"]
    os.environ["EXT_TEST_TEMPORAL_UI_URL"] = info.env["EXT_TEMPORAL_UI_URL"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    stack: Stack | None = getattr(session.config, _STACK_ATTR, None)
    if stack is not None:
        stack.down()
        shutil.rmtree(stack.root, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a `slow` test first, each file kept together: xdist (`--dist loadfile`) hands out
    files in this order, so the long ones start at once instead of one of them trailing a run whose
    other workers are already idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order is kept


@pytest.fixture(scope="session")
def worker_id_num(request: pytest.FixtureRequest) -> int:
    wid = getattr(request.config, "workerinput", {}).get("workerid", "gw0")
    return int(wid.removeprefix("gw") or 0)


@pytest.fixture(scope="session")
def database_server_url() -> str:
    """A URL of the test Postgres server (database part is replaced by fixtures)."""
    return os.environ["EXT_TEST_DATABASE_URL"]


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
async def template_db_url(database_server_url: str, worker_id_num: int) -> str:
    """A migrated database per worker, used as the template of each test's database."""
    url = _with_db(database_server_url, f"extplane_tpl_{os.getpid()}_{worker_id_num}")
    await ensure_database(url)
    await migrate(url)
    return url


@pytest.fixture
async def db_url(template_db_url: str, database_server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test; dropped afterwards."""
    name = f"extplane_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        tpl = urlsplit(template_db_url).path.lstrip("/")
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    finally:
        await admin.close()
    yield _with_db(database_server_url, name)
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, min_size=1, max_size=5)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def redis_url(worker_id_num: int) -> AsyncIterator[str]:
    """A Redis db index of this worker (1 + worker number), flushed before the test."""
    parts = urlsplit(os.environ["EXT_TEST_REDIS_URL"])
    url = urlunsplit(parts._replace(path=f"/{1 + worker_id_num}"))
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    yield url


@pytest.fixture(scope="session")
def temporal_address() -> str:
    return os.environ["EXT_TEST_TEMPORAL_ADDRESS"]


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def tmp_stack_root(tmp_path: Path) -> Iterator[Path]:
    """A dev-stack root for tests that run `Stack` themselves; anything left running is stopped."""
    root = tmp_path / "stack"
    yield root
    Stack(root, with_apps=False).down()
