"""Namespace ownership queries: the registered namespaces, the one covering a name, a name's owner.

Read-only. The publish workflow's check (activities.namespaces), the register transaction
(registry.write.publish) and the operator API's early refusal all resolve a name the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from core.db import map_db_errors

# A pool, or a connection inside a transaction (the register transaction re-checks on its own).
Executor: TypeAlias = (
    "asyncpg.Pool[asyncpg.Record] | asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
)

_COLUMNS = "prefix, publisher, source, workflow_id, created_by, created_at"


@dataclass(frozen=True, kw_only=True)
class NamespaceRecord:
    prefix: str
    publisher: str
    source: str  # registered | claimed
    workflow_id: str
    created_by: str
    created_at: datetime


async def list_namespaces(pool: Executor, publisher: str | None = None) -> list[NamespaceRecord]:
    """Every namespace (or one publisher's), sorted by prefix."""
    async with map_db_errors():
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM namespaces WHERE $1::text IS NULL OR publisher = $1 ORDER BY prefix",
            publisher,
        )
    return [NamespaceRecord(**dict(r)) for r in rows]


async def get_namespace(pool: Executor, prefix: str) -> NamespaceRecord | None:
    """The namespace registered (or claimed) exactly as `prefix`."""
    async with map_db_errors():
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM namespaces WHERE prefix = $1", prefix)
    return NamespaceRecord(**dict(row)) if row is not None else None


async def namespace_of(pool: Executor, name: str) -> NamespaceRecord | None:
    """The longest registered prefix covering `name` (equal to it, or followed by a dot in it)."""
    async with map_db_errors():
        row = await pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM namespaces
                WHERE prefix = $1 OR starts_with($1, prefix || '.')
                ORDER BY length(prefix) DESC LIMIT 1""",
            name,
        )
    return NamespaceRecord(**dict(row)) if row is not None else None


async def name_owner(pool: Executor, name: str) -> str | None:
    """The publisher of the extension `name`, None when no version of it was ever registered."""
    async with map_db_errors():
        owner: str | None = await pool.fetchval("SELECT publisher FROM extensions WHERE name = $1", name)
    return owner
