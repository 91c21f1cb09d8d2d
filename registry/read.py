"""Registry queries for the gateway, the runner's loader, the operator API and activities.

Read-only: nothing here writes. The gateway resolves an install once and caches it until an
invalidation for that install (or a newer revision) arrives on Redis (schema.payloads.notify).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from core.crypto import SecretEnvelope
from core.db import map_db_errors


@dataclass(frozen=True, kw_only=True)
class ResolvedInstall:
    """Everything the hot path needs about one install, in one query."""

    install_id: str
    tenant_id: str
    extension: str
    version: str
    content_hash: str
    status: str  # active | disabled | quarantined
    version_status: str  # verified | revoked
    revision: int
    endpoints: list[tuple[str, str]]  # (method, path template)
    granted_capabilities: list[str]
    config: dict[str, Any]
    config_version: int
    secrets_version: int
    rate_limit_rps: float | None
    rate_limit_burst: int | None
    # For the operator's view only: the debug gate reads the flag fresh per session (registry.read_debug).
    debug_enabled: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    # The egress hosts the install is granted (a subset of the manifest's list).
    granted_egress: list[str] = field(default_factory=list)
    precompiled: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "active" and self.version_status == "verified"


_RESOLVE = """
SELECT i.id, i.tenant_id, e.name, v.version, v.content_hash, i.status, v.status AS version_status,
       i.revision, i.granted_capabilities, i.granted_egress, i.config_version, i.secrets_version,
       i.rate_limit_rps, i.rate_limit_burst, i.debug_enabled, v.manifest, b.precompiled,
       COALESCE((SELECT c.config FROM install_config c
                 WHERE c.install_id = i.id AND c.version = i.config_version), '{}'::jsonb) AS config,
       COALESCE((SELECT array_agg(ARRAY[a.method, a.path] ORDER BY a.path, a.method)
                 FROM api_endpoints a WHERE a.version_id = v.id), '{}') AS endpoints
FROM installs i
JOIN extensions e ON e.id = i.extension_id
JOIN versions v ON v.id = i.version_id
JOIN bundles b ON b.content_hash = v.content_hash
"""


def _resolved(row: asyncpg.Record) -> ResolvedInstall:
    return ResolvedInstall(
        install_id=str(row["id"]),
        tenant_id=row["tenant_id"],
        extension=row["name"],
        version=row["version"],
        content_hash=row["content_hash"],
        status=row["status"],
        version_status=row["version_status"],
        revision=row["revision"],
        endpoints=[(m, p) for m, p in row["endpoints"]],
        granted_capabilities=list(row["granted_capabilities"]),
        granted_egress=list(row["granted_egress"]),
        config=row["config"],
        config_version=row["config_version"],
        secrets_version=row["secrets_version"],
        rate_limit_rps=row["rate_limit_rps"],
        rate_limit_burst=row["rate_limit_burst"],
        debug_enabled=row["debug_enabled"],
        manifest=row["manifest"],
        precompiled=row["precompiled"],
    )


async def resolve_install(pool: asyncpg.Pool, tenant_id: str, extension: str) -> ResolvedInstall | None:
    """The install of `extension` in `tenant_id`, whatever its status; None when not installed."""
    async with map_db_errors():
        row = await pool.fetchrow(_RESOLVE + " WHERE i.tenant_id = $1 AND e.name = $2", tenant_id, extension)
    return _resolved(row) if row else None


async def resolve_active_install(
    pool: asyncpg.Pool, tenant_id: str, extension: str
) -> ResolvedInstall | None:
    """Like `resolve_install`, but None unless the install is active on a verified version."""
    found = await resolve_install(pool, tenant_id, extension)
    return found if found is not None and found.active else None


async def list_installs(pool: asyncpg.Pool, tenant_id: str | None = None) -> list[ResolvedInstall]:
    async with map_db_errors():
        rows = await pool.fetch(
            _RESOLVE + " WHERE $1::text IS NULL OR i.tenant_id = $1 ORDER BY i.tenant_id, e.name", tenant_id
        )
    return [_resolved(r) for r in rows]


@dataclass(frozen=True, kw_only=True)
class VersionRecord:
    extension_id: str
    version_id: str
    name: str
    publisher: str
    version: str
    content_hash: str
    status: str
    manifest: dict[str, Any]
    storage_key: str
    size_bytes: int
    signature: str
    signer_key_id: str
    verified_at: datetime
    precompiled: dict[str, Any]
    publish_workflow_id: str


_VERSION = """
SELECT e.id AS extension_id, v.id AS version_id, e.name, e.publisher, v.version, v.content_hash, v.status,
       v.manifest, b.storage_key, b.size_bytes, b.signature, b.signer_key_id, b.verified_at, b.precompiled,
       v.publish_workflow_id
FROM versions v JOIN extensions e ON e.id = v.extension_id JOIN bundles b ON b.content_hash = v.content_hash
"""


def _version(row: asyncpg.Record) -> VersionRecord:
    return VersionRecord(
        **{k: row[k] for k in row.keys() if k not in ("extension_id", "version_id")},
        extension_id=str(row["extension_id"]),
        version_id=str(row["version_id"]),
    )


async def get_version(pool: asyncpg.Pool, name: str, version: str) -> VersionRecord | None:
    async with map_db_errors():
        row = await pool.fetchrow(_VERSION + " WHERE e.name = $1 AND v.version = $2", name, version)
    return _version(row) if row else None


async def versions_by_hash(pool: asyncpg.Pool, content_hash: str) -> list[VersionRecord]:
    async with map_db_errors():
        rows = await pool.fetch(_VERSION + " WHERE v.content_hash = $1 ORDER BY e.name", content_hash)
    return [_version(r) for r in rows]


async def list_versions(pool: asyncpg.Pool, name: str | None = None) -> list[VersionRecord]:
    async with map_db_errors():
        rows = await pool.fetch(
            _VERSION + " WHERE $1::text IS NULL OR e.name = $1 ORDER BY e.name, v.created_at", name
        )
    return [_version(r) for r in rows]


@dataclass(frozen=True, kw_only=True)
class TrustKeyRecord:
    key_id: str
    publisher: str
    public_key_pem: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    added_at: datetime
    added_by: str


async def trust_keys(pool: asyncpg.Pool, key_ids: list[str] | None = None) -> list[TrustKeyRecord]:
    """Trust keys (all, or the named ones), sorted by key id."""
    async with map_db_errors():
        rows = await pool.fetch(
            """SELECT key_id, publisher, public_key_pem, expires_at, revoked_at, revoked_reason, added_at,
                      added_by
               FROM trust_keys WHERE $1::text[] IS NULL OR key_id = ANY($1) ORDER BY key_id""",
            key_ids,
        )
    return [TrustKeyRecord(**dict(r)) for r in rows]


async def bundles_signed_by(pool: asyncpg.Pool, key_id: str) -> list[VersionRecord]:
    """Every version whose bundle `key_id` signed, sorted by content hash then name."""
    async with map_db_errors():
        rows = await pool.fetch(
            _VERSION + " WHERE b.signer_key_id = $1 ORDER BY v.content_hash, e.name, v.version", key_id
        )
    return [_version(r) for r in rows]


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    revision: int
    operation: str
    from_version: str | None
    to_version: str | None
    workflow_id: str
    at: datetime


async def install_history(pool: asyncpg.Pool, install_id: str) -> list[HistoryEntry]:
    async with map_db_errors():
        rows = await pool.fetch(
            """SELECT h.revision, h.operation, fv.version AS from_version, tv.version AS to_version,
                      h.workflow_id, h.at
               FROM install_history h
               LEFT JOIN versions fv ON fv.id = h.from_version_id
               LEFT JOIN versions tv ON tv.id = h.to_version_id
               WHERE h.install_id = $1 ORDER BY h.revision""",
            install_id,
        )
    return [HistoryEntry(**dict(r)) for r in rows]


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    id: int
    workflow_id: str
    run_id: str
    step: str
    actor: str
    action: str
    tenant_id: str | None
    extension_name: str | None
    version: str | None
    content_hash: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: datetime


async def list_audit(
    pool: asyncpg.Pool,
    *,
    tenant_id: str | None = None,
    extension: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
    action_prefix: str | None = None,
    limit: int = 200,
) -> list[AuditEvent]:
    """Newest first; every filter given must hold (`since` inclusive, `action` exact, `action_prefix`
    a plain prefix: no LIKE wildcards)."""
    async with map_db_errors():
        rows = await pool.fetch(
            """SELECT id, workflow_id, run_id, step, actor, action, tenant_id, extension_name, version,
                      content_hash, before, after, at
               FROM audit_events
               WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR extension_name = $2)
                 AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::text IS NULL OR action = $5)
                 AND ($6::text IS NULL OR starts_with(action, $6))
               ORDER BY at DESC, id DESC LIMIT $3""",
            tenant_id,
            extension,
            limit,
            since,
            action,
            action_prefix,
        )
    return [AuditEvent(**dict(r)) for r in rows]


async def secret_envelope(pool: asyncpg.Pool, install_id: str) -> SecretEnvelope | None:
    """The sealed current secrets of an install for the runner (nothing decrypted here)."""
    async with map_db_errors():
        row = await pool.fetchrow(
            """SELECT s.version, s.ciphertext, s.nonce, k.wrapped_key, k.master_key_version
               FROM installs i
               JOIN install_secrets s ON s.install_id = i.id AND s.version = i.secrets_version
               JOIN install_data_keys k ON k.install_id = i.id
               WHERE i.id = $1""",
            install_id,
        )
    if row is None:
        return None
    return SecretEnvelope(
        install_id=install_id,
        secrets_version=row["version"],
        ciphertext_b64=base64.b64encode(row["ciphertext"]).decode(),
        nonce_b64=base64.b64encode(row["nonce"]).decode(),
        wrapped_key_b64=base64.b64encode(row["wrapped_key"]).decode(),
        master_key_version=row["master_key_version"],
    )
