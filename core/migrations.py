"""Forward-only, checksummed SQL migrations from `schema/migrations/NNNN_name.sql`.

Each pending file runs in its own transaction together with its `schema_migrations` row, under an
advisory lock so two processes starting at once do not race. A recorded migration whose file has
changed (checksum differs) stops everything: history must not be rewritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.db import connect
from core.errors import ExtplaneError
from schema.errors import ErrorCode

_LOCK_KEY = 0x65787470  # "extp"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(ExtplaneError):
    default_code = ErrorCode.MIGRATION_CHECKSUM_MISMATCH


def load_migrations() -> list[Migration]:
    out: list[Migration] = []
    for entry in resources.files("schema").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(version=int(m.group(1)), name=m.group(2), sql=entry.read_text("utf-8")))
    out.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in out]
    # Numbers are handed out to parallel branches, so one may land before a lower one: a gap is
    # allowed (migrate applies whatever is not recorded yet), a number used twice is not.
    if len(set(versions)) != len(versions) or (versions and versions[0] < 1):
        raise MigrationError(f"migration numbers must be unique and start at 1 or above, got {versions}")
    return out


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist (connects to database `postgres`)."""
    parts = urlsplit(dsn)
    dbname = parts.path.lstrip("/") or "postgres"
    conn = await connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            try:
                await conn.execute(f'CREATE DATABASE "{dbname}"')
            except asyncpg.exceptions.DuplicateDatabaseError:
                pass  # created concurrently by another process: fine
    finally:
        await conn.close()


async def migrate(dsn: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now (empty when up to date)."""
    migrations = load_migrations()
    conn = await connect(dsn)
    applied_now: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            recorded = {
                r["version"]: r["checksum"]
                for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for mig in migrations:
                if mig.version in recorded:
                    if recorded[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name} changed after it was applied "
                            f"(recorded {recorded[mig.version][:12]}, file {mig.checksum[:12]}); "
                            "add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        mig.checksum,
                    )
                applied_now.append(mig.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return applied_now
