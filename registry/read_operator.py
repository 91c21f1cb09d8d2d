"""Registry queries of the operator API and of bearer-token authentication (gateway and operator).

Read-only, like `registry.read`: tokens are written only by the CreateToken workflow's activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from core.db import map_db_errors


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    token_id: str
    tenant_id: str | None
    scopes: list[str] = field(default_factory=list)
    name: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


async def token_by_hash(pool: asyncpg.Pool, token_hash: str) -> TokenRecord | None:
    """The token row with this sha256 hex, whatever its expiry or revocation (the caller decides)."""
    async with map_db_errors():
        row = await pool.fetchrow(
            """SELECT id, tenant_id, scopes, name, created_at, expires_at, revoked_at
               FROM api_tokens WHERE token_hash = $1""",
            token_hash,
        )
    if row is None:
        return None
    return TokenRecord(
        token_id=str(row["id"]),
        tenant_id=row["tenant_id"],
        scopes=list(row["scopes"]),
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


@dataclass(frozen=True, kw_only=True)
class ExtensionSummary:
    name: str
    publisher: str
    created_at: datetime
    versions: list[str] = field(default_factory=list)


async def list_extensions(pool: asyncpg.Pool) -> list[ExtensionSummary]:
    """Every extension with its versions in publish order."""
    async with map_db_errors():
        rows = await pool.fetch(
            """SELECT e.name, e.publisher, e.created_at,
                      COALESCE(array_agg(v.version ORDER BY v.created_at)
                               FILTER (WHERE v.id IS NOT NULL), '{}') AS versions
               FROM extensions e LEFT JOIN versions v ON v.extension_id = e.id
               GROUP BY e.id ORDER BY e.name"""
        )
    return [
        ExtensionSummary(
            name=r["name"], publisher=r["publisher"], created_at=r["created_at"], versions=list(r["versions"])
        )
        for r in rows
    ]
