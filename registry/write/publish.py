"""Registering a published version: one transaction over extensions, bundles, versions, api_endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.db import map_db_errors
from core.errors import Conflict, Forbidden
from registry.read_namespaces import namespace_of
from registry.write._install_state import Conn
from schema.capabilities import effective_capabilities
from schema.errors import ErrorCode


@dataclass(frozen=True, kw_only=True)
class RegisteredVersion:
    extension_id: str
    version_id: str
    created: bool
    # The namespace this transaction claimed for the publisher ("" when none).
    claimed_namespace: str = ""


async def register_version(
    pool: asyncpg.Pool,
    *,
    content_hash: str,
    storage_key: str,
    size: int,
    signature: str,
    signer_key_id: str,
    verified_at: datetime,
    manifest: dict[str, Any],
    workflow_id: str,
    precompiled: dict[str, Any] | None = None,
    claim_namespace: str = "",
) -> RegisteredVersion:
    """Register `manifest.name@manifest.version` with its bundle; idempotent for the same hash.

    A new name is checked against the namespaces (the workflow checked earlier; this is the check at
    commit, so a namespace registered or claimed meanwhile still wins). `claim_namespace` is first
    claimed for the publisher when nobody holds it.

    Raises:
        Conflict(version_exists): name@version exists with another content hash.
        Conflict(conflict): the extension name belongs to another publisher.
        Forbidden(namespace_owned): a new name in a namespace of another publisher.
    """
    name, version, publisher = manifest["name"], manifest["version"], manifest["publisher"]
    capabilities = sorted(effective_capabilities(manifest.get("capabilities", [])))
    endpoints = (manifest.get("api") or {}).get("endpoints", [])
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        # The no-op update takes the row lock, so two publishes of one name serialize here.
        ext = await conn.fetchrow(
            """INSERT INTO extensions (name, publisher) VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
               RETURNING id, publisher, (xmax = 0) AS inserted""",
            name,
            publisher,
        )
        assert ext is not None
        if ext["publisher"] != publisher:
            raise Conflict(
                f"extension {name} belongs to publisher {ext['publisher']!r}, not {publisher!r}",
                details={"name": name},
            )
        claimed = ""
        if ext["inserted"]:
            claimed = await _check_namespace(
                conn, name=name, publisher=publisher, claim=claim_namespace, workflow_id=workflow_id
            )
        elif claim_namespace:
            # A retry after this workflow's own commit still reports the claim it made.
            claimed = (
                await conn.fetchval(
                    """SELECT prefix FROM namespaces
                       WHERE prefix = $1 AND workflow_id = $2 AND source = 'claimed'""",
                    claim_namespace,
                    workflow_id,
                )
                or ""
            )
        await conn.execute(
            """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                    verified_at, precompiled)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (content_hash)
               DO UPDATE SET precompiled = bundles.precompiled || EXCLUDED.precompiled""",
            content_hash,
            size,
            storage_key,
            signature,
            signer_key_id,
            verified_at,
            precompiled or {},
        )
        version_id = await conn.fetchval(
            """INSERT INTO versions (extension_id, version, content_hash, manifest, capabilities,
                                     publish_workflow_id)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (extension_id, version) DO NOTHING RETURNING id""",
            ext["id"],
            version,
            content_hash,
            manifest,
            [str(c) for c in capabilities],
            workflow_id,
        )
        created = version_id is not None
        if not created:
            row = await conn.fetchrow(
                "SELECT id, content_hash FROM versions WHERE extension_id = $1 AND version = $2",
                ext["id"],
                version,
            )
            assert row is not None
            if row["content_hash"] != content_hash:
                # Raising rolls back the bundles row inserted above.
                raise Conflict(
                    f"{name}@{version} is already published with {row['content_hash']}",
                    code=ErrorCode.VERSION_EXISTS,
                    details={"name": name, "version": version, "content_hash": row["content_hash"]},
                )
            version_id = row["id"]
        await conn.executemany(
            """INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING""",
            [(version_id, ep["method"], ep["path"]) for ep in endpoints],
        )
    return RegisteredVersion(
        extension_id=str(ext["id"]), version_id=str(version_id), created=created, claimed_namespace=claimed
    )


async def _check_namespace(conn: Conn, *, name: str, publisher: str, claim: str, workflow_id: str) -> str:
    """Claim `claim` if nobody holds it, then refuse a new name whose namespace is another's.
    Returns the prefix claimed now ("" when none). Raising rolls the whole registration back."""
    claimed = ""
    if claim:
        # Two first publishes into one namespace: the second waits on the first's row, then sees it.
        claimed = (
            await conn.fetchval(
                """INSERT INTO namespaces (prefix, publisher, source, workflow_id, created_by)
                   VALUES ($1, $2, 'claimed', $3, 'first-publish')
                   ON CONFLICT (prefix) DO NOTHING RETURNING prefix""",
                claim,
                publisher,
                workflow_id,
            )
            or ""
        )
    owner = await namespace_of(conn, name)
    if owner is not None and owner.publisher != publisher:
        raise Forbidden(
            f"extension name {name} is in namespace {owner.prefix} of publisher {owner.publisher!r}, "
            f"not {publisher!r}",
            code=ErrorCode.NAMESPACE_OWNED,
            details={"name": name, "namespace": owner.prefix},
        )
    return claimed
