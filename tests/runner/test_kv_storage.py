"""runner._storage against real Postgres: revisions, conflicts, deletes, paging cursors, quotas and
install scoping. Calls run on a worker thread (as host functions do) while the test's loop serves asyncpg."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from runner._storage import PgStorage, Quotas, StorageFailure
from tests.runner.runner_helpers import create_install

pytestmark = pytest.mark.integration
HASH = "sha256:" + "b" * 64
T = 10.0


@pytest.fixture
async def storage(runner_db_url: str) -> AsyncIterator[PgStorage]:
    s = PgStorage(
        runner_db_url,
        asyncio.get_running_loop(),
        Quotas(max_value_bytes=100, max_keys=5, max_bytes=300),
        pool_size=2,
    )
    yield s
    await s.aclose()


@pytest.fixture
async def install(runner_db_url: str) -> str:
    return await create_install(
        runner_db_url, HASH, tenant=f"kv-{uuid.uuid4().hex[:8]}", extension="com.test.kv"
    )


async def _err(fn, *args, **kw) -> StorageFailure:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageFailure) as info:
        await asyncio.to_thread(fn, *args, **kw)
    return info.value


async def test_put_get_revisions_and_conflicts(storage: PgStorage, install: str) -> None:
    assert await asyncio.to_thread(storage.put, install, "ns", "k", "v1", 0, timeout_s=T) == 1
    assert (await _err(storage.put, install, "ns", "k", "again", 0, timeout_s=T)).payload == 1
    assert await asyncio.to_thread(storage.put, install, "ns", "k", "v2", 1, timeout_s=T) == 2
    assert await asyncio.to_thread(storage.put, install, "ns", "k", "v3", None, timeout_s=T) == 3
    entry = await asyncio.to_thread(storage.get, install, "ns", "k", timeout_s=T)
    assert (entry.value, entry.revision) == ("v3", 3)
    assert (await _err(storage.delete, install, "ns", "k", 2, timeout_s=T)).case == "conflict"
    await asyncio.to_thread(storage.delete, install, "ns", "k", 3, timeout_s=T)
    assert (await _err(storage.get, install, "ns", "k", timeout_s=T)).case == "not-found"
    assert (await _err(storage.delete, install, "ns", "k", None, timeout_s=T)).case == "not-found"


async def test_list_pages_with_a_working_cursor(storage: PgStorage, install: str) -> None:
    for i in range(5):
        await asyncio.to_thread(storage.put, install, "pages", f"key-{i}", str(i), None, timeout_s=T)
    seen, cursor = [], ""
    while True:
        entries, cursor = await asyncio.to_thread(storage.list_page, install, "pages", cursor, 2, timeout_s=T)
        seen += [e.key for e in entries]
        if not cursor:
            break
    assert seen == [f"key-{i}" for i in range(5)]
    assert (await _err(storage.list_page, install, "pages", "!!bad!!", 2, timeout_s=T)).case == "invalid"


async def test_quotas(storage: PgStorage, install: str) -> None:
    assert (
        await _err(storage.put, install, "q", "big", "x" * 101, None, timeout_s=T)
    ).case == "quota-exceeded"
    for i in range(5):
        await asyncio.to_thread(storage.put, install, "q", f"k{i}", "x" * 50, None, timeout_s=T)
    failure = await _err(storage.put, install, "q", "k6", "x", None, timeout_s=T)
    assert (failure.case, "keys" in str(failure.payload)) == ("quota-exceeded", True)
    # replacing a value counts the difference: 4 * 50 + 100 = 300 fits, 3 * 50 + 2 * 100 = 350 does not
    assert await asyncio.to_thread(storage.put, install, "q", "k0", "x" * 100, None, timeout_s=T) == 2
    failure = await _err(storage.put, install, "q", "k1", "x" * 100, None, timeout_s=T)
    assert (failure.case, "bytes" in str(failure.payload)) == ("quota-exceeded", True)


async def test_installs_do_not_see_each_other(storage: PgStorage, install: str, runner_db_url: str) -> None:
    other = await create_install(
        runner_db_url, HASH, tenant=f"kv-{uuid.uuid4().hex[:8]}", extension="com.test.kv"
    )
    await asyncio.to_thread(storage.put, install, "ns", "shared-name", "mine", None, timeout_s=T)
    assert (await _err(storage.get, other, "ns", "shared-name", timeout_s=T)).case == "not-found"
    entries, _ = await asyncio.to_thread(storage.list_page, other, "ns", "", 10, timeout_s=T)
    assert entries == []


async def test_invalid_install_and_names(storage: PgStorage) -> None:
    assert (await _err(storage.get, "not-a-uuid", "ns", "k", timeout_s=T)).case == "invalid"
    assert (
        await _err(storage.get, "00000000-0000-0000-0000-000000000000", "", "k", timeout_s=T)
    ).case == "invalid"
    unknown = "00000000-0000-0000-0000-000000000001"
    assert (await _err(storage.put, unknown, "ns", "k", "v", None, timeout_s=T)).case == "invalid"
