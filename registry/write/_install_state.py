"""Shared pieces of install mutations: locking the row, snapshots, history rows, config validation."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from core.config_schema import schema_issues
from core.errors import InvalidInput, NotFound
from core.storable import require_storable_config
from schema.errors import ErrorCode

# A connection from `pool.acquire()` or `asyncpg.connect`.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# The config values and secret names of the install's current versions ride along for the audit rows'
# before/after (snapshot); the secret values stay encrypted in install_secrets and are never selected.
INSTALL_COLUMNS = """i.id, i.tenant_id, i.extension_id, i.version_id, i.status, i.granted_capabilities,
    i.revision, i.config_version, i.secrets_version, i.rate_limit_rps, i.rate_limit_burst, i.debug_enabled,
    i.granted_egress,
    v.version, v.status AS version_status, v.manifest, v.content_hash,
    (SELECT c.config FROM install_config c
      WHERE c.install_id = i.id AND c.version = i.config_version) AS config,
    (SELECT s.key_names FROM install_secrets s
      WHERE s.install_id = i.id AND s.version = i.secrets_version) AS secret_names"""


async def lock_install(conn: Conn, tenant_id: str, extension_id: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {INSTALL_COLUMNS} FROM installs i JOIN versions v ON v.id = i.version_id
            WHERE i.tenant_id = $1 AND i.extension_id = $2 FOR UPDATE OF i""",
        tenant_id,
        extension_id,
    )


async def extension_id(conn: Conn, name: str) -> Any:
    return await conn.fetchval("SELECT id FROM extensions WHERE name = $1", name)


async def find_version(conn: Conn, ext_id: Any, name: str, version: str) -> asyncpg.Record:
    """A version of the extension that may be installed (verified), else NotFound / not installable."""
    if not version:
        raise InvalidInput("a version is required for this operation")
    row = await conn.fetchrow(
        """SELECT id, version, status, manifest, capabilities FROM versions
           WHERE extension_id = $1 AND version = $2""",
        ext_id,
        version,
    )
    if row is None:
        raise NotFound(f"{name}@{version} is not published", details={"name": name, "version": version})
    if row["status"] != "verified":
        raise InvalidInput(
            f"{name}@{version} is {row['status']} and cannot be installed",
            code=ErrorCode.VERSION_NOT_INSTALLABLE,
            details={"name": name, "version": version, "status": row["status"]},
        )
    return row


def snapshot(row: asyncpg.Record | None) -> dict[str, Any] | None:
    """Install state for audit rows: the config values (docs/operator.md promises them) and the secret
    *names*; never a secret value or ciphertext."""
    if row is None:
        return None
    return {
        "install_id": str(row["id"]),
        "version": row["version"],
        "content_hash": row["content_hash"],
        "status": row["status"],
        "revision": row["revision"],
        "config_version": row["config_version"],
        "config": row["config"],
        "secrets_version": row["secrets_version"],
        "secret_names": sorted(row["secret_names"] or []),
        "granted_capabilities": list(row["granted_capabilities"]),
        "granted_egress": list(row["granted_egress"]),
        "rate_limit_rps": row["rate_limit_rps"],
        "rate_limit_burst": row["rate_limit_burst"],
        "debug_enabled": row["debug_enabled"],
    }


async def reload(conn: Conn, install_id: Any) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {INSTALL_COLUMNS} FROM installs i JOIN versions v ON v.id = i.version_id WHERE i.id = $1",
        install_id,
    )
    assert row is not None
    return row


async def recorded_change(
    conn: Conn, install_id: Any, workflow_id: str, operation: str
) -> asyncpg.Record | None:
    """The history row this workflow already wrote for this operation (an activity retry), if any."""
    return await conn.fetchrow(
        """SELECT h.revision, h.operation, fv.version AS from_version, tv.version AS to_version
           FROM install_history h
           LEFT JOIN versions fv ON fv.id = h.from_version_id
           LEFT JOIN versions tv ON tv.id = h.to_version_id
           WHERE h.install_id = $1 AND h.workflow_id = $2 AND h.operation = $3""",
        install_id,
        workflow_id,
        operation,
    )


async def append_history(
    conn: Conn,
    *,
    install_id: Any,
    revision: int,
    operation: str,
    from_version_id: Any,
    to_version_id: Any,
    workflow_id: str,
) -> None:
    await conn.execute(
        """INSERT INTO install_history (install_id, revision, operation, from_version_id, to_version_id,
                                        workflow_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        install_id,
        revision,
        operation,
        from_version_id,
        to_version_id,
        workflow_id,
    )


def validate_config(config: Any, manifest: dict[str, Any], *, subject: str = "config") -> dict[str, Any]:
    """Check a config against the version's `config_schema` (when it declares one). `subject` names
    what is checked in the message (e.g. the install's current config, against another version)."""
    if not isinstance(config, dict):
        raise InvalidInput("config must be a JSON object", code=ErrorCode.INVALID_CONFIG)
    # Before jsonschema and Postgres: jsonb would refuse it on every retry of this activity.
    require_storable_config(config)
    schema = manifest.get("config_schema")
    if schema:
        # Value-free messages: this one reaches Temporal failures, audit rows and the CLI.
        issues = schema_issues(config, schema)
        if issues:
            text = "; ".join(f"{i['path']}: {i['message']}" for i in issues)
            raise InvalidInput(
                f"{subject} does not match the extension's config_schema: {text}",
                code=ErrorCode.INVALID_CONFIG,
                details={"issues": issues},
            )
    return config
