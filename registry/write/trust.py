"""Trust keys and what revoking one does to the versions it signed and the installs running them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from core.db import map_db_errors
from core.errors import Conflict, NotFound
from registry.write._install_state import append_history


@dataclass(frozen=True, kw_only=True)
class RevokedKey:
    key_id: str
    publisher: str
    already_revoked: bool


@dataclass(frozen=True, kw_only=True)
class RevokedVersions:
    # (name, version) of every version of the bundle, revoked now or before.
    versions: list[tuple[str, str]]
    # (install id, tenant, extension name, revision) quarantined by this workflow.
    quarantined: list[tuple[str, str, str, int]]


async def add_trust_key(
    pool: asyncpg.Pool,
    *,
    key_id: str,
    publisher: str,
    public_key_pem: str,
    expires_at: datetime | None,
    added_by: str,
) -> bool:
    """Trust a key for one publisher; True when added now. Raises Conflict if the id is taken otherwise."""
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        added = await conn.fetchval(
            """INSERT INTO trust_keys (key_id, publisher, public_key_pem, expires_at, added_by)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING RETURNING key_id""",
            key_id,
            publisher,
            public_key_pem,
            expires_at,
            added_by,
        )
        if added is not None:
            return True
        row = await conn.fetchrow("SELECT publisher, revoked_at FROM trust_keys WHERE key_id = $1", key_id)
        assert row is not None
        if row["publisher"] != publisher:
            raise Conflict(f"key {key_id} is already trusted for publisher {row['publisher']!r}")
        if row["revoked_at"] is not None:
            raise Conflict(f"key {key_id} was revoked and cannot be trusted again")
        return False


async def mark_key_revoked(
    pool: asyncpg.Pool, *, key_id: str, reason: str, revoked_at: datetime
) -> RevokedKey:
    """Set revoked_at (first revocation wins). Raises NotFound for an unknown key."""
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT publisher, revoked_at FROM trust_keys WHERE key_id = $1 FOR UPDATE", key_id
        )
        if row is None:
            raise NotFound(f"key {key_id} is not in the trust policy", details={"key_id": key_id})
        if row["revoked_at"] is None:
            await conn.execute(
                "UPDATE trust_keys SET revoked_at = $2, revoked_reason = $3 WHERE key_id = $1",
                key_id,
                revoked_at,
                reason,
            )
    already = row["revoked_at"] is not None
    return RevokedKey(key_id=key_id, publisher=row["publisher"], already_revoked=already)


async def revoke_bundle_versions(
    pool: asyncpg.Pool, *, content_hash: str, revoked_at: datetime, workflow_id: str
) -> RevokedVersions:
    """Mark the versions of a bundle revoked and quarantine every install running them.

    Each quarantine bumps the install revision and appends install_history (operation `quarantine`).
    Idempotent: a retry quarantines nothing twice and reports what this workflow quarantined.
    """
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        versions = await conn.fetch(
            """UPDATE versions v SET status = 'revoked', revoked_at = COALESCE(v.revoked_at, $2)
               FROM extensions e WHERE e.id = v.extension_id AND v.content_hash = $1
               RETURNING v.id, e.name, v.version""",
            content_hash,
            revoked_at,
        )
        ids = [v["id"] for v in versions]
        installs = await conn.fetch(
            """SELECT id, version_id, revision FROM installs
               WHERE version_id = ANY($1::uuid[]) AND status <> 'quarantined' ORDER BY id FOR UPDATE""",
            ids,
        )
        for inst in installs:
            await conn.execute(
                """UPDATE installs SET status = 'quarantined', revision = revision + 1, updated_at = now()
                   WHERE id = $1""",
                inst["id"],
            )
            await append_history(
                conn,
                install_id=inst["id"],
                revision=inst["revision"] + 1,
                operation="quarantine",
                from_version_id=inst["version_id"],
                to_version_id=inst["version_id"],
                workflow_id=workflow_id,
            )
        done = await conn.fetch(
            """SELECT i.id, i.tenant_id, e.name, h.revision FROM install_history h
               JOIN installs i ON i.id = h.install_id JOIN extensions e ON e.id = i.extension_id
               WHERE h.workflow_id = $1 AND h.operation = 'quarantine' AND i.version_id = ANY($2::uuid[])
               ORDER BY i.id""",
            workflow_id,
            ids,
        )
    if not versions:
        raise NotFound(f"no version has content hash {content_hash}")
    return RevokedVersions(
        versions=sorted((v["name"], v["version"]) for v in versions),
        quarantined=[(str(r["id"]), r["tenant_id"], r["name"], r["revision"]) for r in done],
    )
