"""Registry queries of the operator API and of bearer-token authentication (gateway and operator).

Read-only, like `registry.read`: tokens are written only by the token workflows' activities, and
execution_log rows only by the gateway (api/gateway/execlog.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from core.db import map_db_errors
from core.errors import InvalidInput

MAX_EXECUTIONS = 1000
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    token_id: str
    tenant_id: str | None
    scopes: list[str] = field(default_factory=list)
    name: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    identity: str | None = None  # migration 0005; None for tokens created before names existed


_TOKEN_COLUMNS = "id, tenant_id, scopes, name, created_at, expires_at, revoked_at, identity"
MAX_TOKENS = 1000


async def token_by_hash(pool: asyncpg.Pool, token_hash: str) -> TokenRecord | None:
    """The token row with this sha256 hex, whatever its expiry or revocation (the caller decides)."""
    async with map_db_errors():
        row = await pool.fetchrow(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1", token_hash
        )
    return _token_record(row)


async def token_by_id(pool: asyncpg.Pool, token_id: str) -> TokenRecord | None:
    """The token row with this id (None for an id that is not a UUID or not a token)."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        return None
    async with map_db_errors():
        row = await pool.fetchrow(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = $1::uuid", token_id)
    return _token_record(row)


async def token_by_identity(pool: asyncpg.Pool, identity: str) -> TokenRecord | None:
    """The live (not revoked) token with this identity, if any: at most one (api_tokens_live_identity)."""
    async with map_db_errors():
        row = await pool.fetchrow(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE identity = $1 AND revoked_at IS NULL", identity
        )
    return _token_record(row)


async def list_tokens(
    pool: asyncpg.Pool, *, tenant_id: str | None = None, limit: int = 100
) -> list[TokenRecord]:
    """Tokens newest first, never their hashes: of one tenant, or all of them (`tenant_id` None).

    Raises:
        InvalidInput: `limit` out of range.
    """
    if not 1 <= limit <= MAX_TOKENS:
        raise InvalidInput(f"limit must be between 1 and {MAX_TOKENS}, got {limit}")
    where, args = ("WHERE tenant_id = $1", [tenant_id]) if tenant_id is not None else ("", [])
    async with map_db_errors():
        rows = await pool.fetch(
            f"""SELECT {_TOKEN_COLUMNS} FROM api_tokens {where}
                ORDER BY created_at DESC, id LIMIT ${len(args) + 1}""",
            *args,
            limit,
        )
    return [r for r in map(_token_record, rows) if r is not None]


def _token_record(row: asyncpg.Record | None) -> TokenRecord | None:
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
        identity=row["identity"],
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


async def install_exists(pool: asyncpg.Pool, tenant_id: str, extension: str) -> bool:
    """Whether `extension` is installed in `tenant_id` (any status): the operator API asks before it
    sends a change that would otherwise start an install workflow for nothing."""
    async with map_db_errors():
        found = await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM installs i JOIN extensions e ON e.id = i.extension_id
                              WHERE i.tenant_id = $1 AND e.name = $2)""",
            tenant_id,
            extension,
        )
    return bool(found)


@dataclass(frozen=True, kw_only=True)
class ExecutionRecord:
    """One execution_log row: a tenant call as the gateway recorded it (never its content)."""

    id: int
    request_id: str
    tenant_id: str
    extension: str
    version: str | None
    install_id: str | None
    method: str
    endpoint: str | None  # the matched template; None when no endpoint matched
    status: int
    outcome: str
    duration_ms: float
    fuel_consumed: int | None  # None when the runner reported none: no guest ran (docs/gateway.md)
    principal: str | None  # "token:<id>" or "admin"; None on rows older than migration 0003
    operator: bool
    at: datetime


async def list_executions(
    pool: asyncpg.Pool,
    tenant_id: str,
    *,
    extension: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[ExecutionRecord]:
    """Calls of one tenant, newest first, at most `limit` (1..MAX_EXECUTIONS).

    `before_id` is the id of the last row of the previous page: rows older than it follow, ordered
    and compared by (at, id), the order of the (tenant_id[, extension_name], at DESC) indexes. A
    `before_id` that names no row of this tenant (pruned, or typed by hand) falls back to `id < before_id`.

    Raises:
        InvalidInput: `limit` or `before_id` out of range.
    """
    if not 1 <= limit <= MAX_EXECUTIONS:
        raise InvalidInput(f"limit must be between 1 and {MAX_EXECUTIONS}, got {limit}")
    if before_id is not None and not 1 <= before_id <= _BIGINT_MAX:
        raise InvalidInput(f"before must be an execution id (1..{_BIGINT_MAX}), got {before_id}")
    # Conditions are spelled out rather than `($n IS NULL OR ...)`: a prepared statement's generic
    # plan could not use the indexes for an optional condition.
    where = ["tenant_id = $1"]
    args: list[object] = [tenant_id]
    if extension is not None:
        args.append(extension)
        where.append(f"extension_name = ${len(args)}")
    async with map_db_errors(), pool.acquire() as conn:
        if before_id is not None:
            cursor_at = await conn.fetchval(
                "SELECT at FROM execution_log WHERE id = $1 AND tenant_id = $2", before_id, tenant_id
            )
            if cursor_at is None:
                args.append(before_id)
                where.append(f"id < ${len(args)}")
            else:
                args += [cursor_at, before_id]
                where.append(f"(at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await conn.fetch(
            f"""SELECT id, request_id, tenant_id, extension_name, version, install_id, method, endpoint,
                       status, outcome, duration_ms, fuel_consumed, principal, operator, at
                FROM execution_log WHERE {" AND ".join(where)}
                ORDER BY at DESC, id DESC LIMIT ${len(args)}""",
            *args,
        )
    return [
        ExecutionRecord(
            id=r["id"],
            request_id=r["request_id"],
            tenant_id=r["tenant_id"],
            extension=r["extension_name"],
            version=r["version"],
            install_id=str(r["install_id"]) if r["install_id"] is not None else None,
            method=r["method"],
            endpoint=r["endpoint"],
            status=r["status"],
            outcome=r["outcome"],
            duration_ms=r["duration_ms"],
            fuel_consumed=r["fuel_consumed"],
            principal=r["principal"],
            operator=r["operator"],
            at=r["at"],
        )
        for r in rows
    ]
