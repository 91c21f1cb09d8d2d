"""Namespaces an admin registers for a publisher, or removes (RegisterNamespace / RemoveNamespace)."""

from __future__ import annotations

import asyncpg

from core.db import map_db_errors
from core.errors import Conflict


async def register_namespace(
    pool: asyncpg.Pool, *, prefix: str, publisher: str, workflow_id: str, created_by: str
) -> bool:
    """Give `prefix` to `publisher`; True when added now.

    Idempotent for the same publisher (a namespace claimed by a first publish becomes 'registered').
    Raises Conflict when the prefix belongs to another publisher: remove it first, on purpose.
    """
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        added = await conn.fetchval(
            """INSERT INTO namespaces (prefix, publisher, source, workflow_id, created_by)
               VALUES ($1, $2, 'registered', $3, $4) ON CONFLICT (prefix) DO NOTHING RETURNING prefix""",
            prefix,
            publisher,
            workflow_id,
            created_by,
        )
        if added is not None:
            return True
        row = await conn.fetchrow("SELECT publisher FROM namespaces WHERE prefix = $1 FOR UPDATE", prefix)
        assert row is not None
        if row["publisher"] != publisher:
            raise Conflict(
                f"namespace {prefix} belongs to publisher {row['publisher']!r}; remove it first",
                details={"prefix": prefix},
            )
        await conn.execute("UPDATE namespaces SET source = 'registered' WHERE prefix = $1", prefix)
        return False


async def remove_namespace(pool: asyncpg.Pool, *, prefix: str) -> str | None:
    """Delete `prefix`; returns the publisher it belonged to, None when there was none (a no-op).

    Names already published under it keep their owner (extensions.publisher)."""
    async with map_db_errors():
        owner: str | None = await pool.fetchval(
            "DELETE FROM namespaces WHERE prefix = $1 RETURNING publisher", prefix
        )
    return owner
