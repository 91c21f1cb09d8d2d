"""Forward-only, checksummed migrations on real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from core import migrations
from core.migrations import Migration, MigrationError, ensure_database, load_migrations, migrate

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "extensions",
    "versions",
    "bundles",
    "api_endpoints",
    "installs",
    "install_history",
    "install_config",
    "install_data_keys",
    "install_secrets",
    "trust_keys",
    "api_tokens",
    "audit_events",
    "execution_log",
    "storage_records",
    "schema_migrations",
}


@pytest.fixture
async def empty_db_url(database_server_url: str) -> AsyncIterator[str]:
    name = f"extplane_empty_{uuid.uuid4().hex[:10]}"
    url = urlunsplit(urlsplit(database_server_url)._replace(path=f"/{name}"))
    await ensure_database(url)
    yield url
    admin = await asyncpg.connect(urlunsplit(urlsplit(database_server_url)._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def test_migrates_from_empty_and_is_idempotent(empty_db_url: str) -> None:
    assert await _tables(empty_db_url) == set()
    applied = await migrate(empty_db_url)
    assert applied == [m.version for m in load_migrations()]
    assert EXPECTED_TABLES <= await _tables(empty_db_url)
    assert await migrate(empty_db_url) == []


async def test_a_changed_migration_is_refused(empty_db_url: str) -> None:
    await migrate(empty_db_url)
    conn = await asyncpg.connect(empty_db_url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    finally:
        await conn.close()
    with pytest.raises(MigrationError) as err:
        await migrate(empty_db_url)
    assert err.value.code.value == "migration_checksum_mismatch"
    assert "0001_registry changed after it was applied" in err.value.message


async def test_a_failing_migration_leaves_nothing_behind(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = load_migrations()
    broken = Migration(
        version=len(good) + 1,
        name="broken",
        sql="CREATE TABLE half_done (id int); SELECT no_such_function();",
    )
    monkeypatch.setattr(migrations, "load_migrations", lambda: [*good, broken])
    with pytest.raises(asyncpg.exceptions.UndefinedFunctionError):
        await migrate(empty_db_url)
    tables = await _tables(empty_db_url)
    assert "half_done" not in tables, "a failed migration must roll back entirely"
    conn = await asyncpg.connect(empty_db_url)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert versions == [m.version for m in good]


def test_migration_files_are_numbered_uniquely_in_order() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
