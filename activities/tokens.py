"""The token activities: store one `api_tokens` row holding only the token's sha256 (idempotent on the
id), mark one revoked (idempotent: the first revocation time stays), and tell gateways.

The SQL lives here rather than in `registry.write` because that package belongs to the publish and
install lifecycle; these are the same kind of single-statement, business-keyed writes.
"""

from __future__ import annotations

import json
import re
import uuid

import asyncpg
import redis.asyncio as aioredis
from temporalio import activity

from activities._errors import activity_errors
from core.db import map_db_errors
from core.errors import Conflict, InvalidInput, NotFound
from core.redis import map_redis_errors
from schema.errors import ErrorCode
from schema.payloads.tokens import (
    NAME_RULE,
    SCOPES,
    TOKEN_INVALIDATE_CHANNEL,
    MarkTokenRevokedInput,
    MarkTokenRevokedResult,
    StoreTokenInput,
    StoreTokenResult,
    TokenInvalidateInput,
    TokenInvalidateResult,
    identity_of,
    valid_name,
)

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


def _validate(inp: StoreTokenInput) -> None:
    if not _HASH_RE.fullmatch(inp.token_hash):
        raise InvalidInput("token_hash must be 64 lowercase hex characters (sha256 of the token)")
    unknown = sorted(set(inp.scopes) - set(SCOPES))
    if unknown or not inp.scopes:
        # The count, not the names: a rejected value is never echoed (it may be a misplaced secret).
        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}; {len(unknown)} given are not scopes"
        )
    if inp.expires_at is not None and inp.expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone")
    # Histories from before names existed carry no identity; a new one must be the name's own.
    if inp.identity and (not valid_name(inp.name) or inp.identity != identity_of(inp.tenant_id, inp.name)):
        raise InvalidInput(f"a token name must be {NAME_RULE}, and its identity derived from it")


class TokenActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="store_api_token")
    async def store_api_token(self, inp: StoreTokenInput) -> StoreTokenResult:
        """Insert the token row; a retry with the same id and hash is a no-op."""
        with activity_errors():
            _validate(inp)
            async with map_db_errors():
                # ON CONFLICT without a target also covers api_tokens_live_identity (0005).
                inserted = await self.pool.fetchval(
                    """INSERT INTO api_tokens (id, token_hash, tenant_id, scopes, name, expires_at, identity)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT DO NOTHING RETURNING id""",
                    inp.token_id,
                    inp.token_hash,
                    inp.tenant_id,
                    sorted(set(inp.scopes)),
                    inp.name,
                    inp.expires_at,
                    inp.identity or None,
                )
                if inserted is None:
                    existing = await self.pool.fetchval(
                        "SELECT token_hash FROM api_tokens WHERE id = $1", inp.token_id
                    )
                    # Same id with the same hash is a retry; anything else collides with another token.
                    if existing == inp.token_hash:
                        return StoreTokenResult(token_id=inp.token_id, created=False)
                    if existing is None and inp.identity:
                        taken = await self.pool.fetchval(
                            "SELECT 1 FROM api_tokens WHERE identity = $1 AND revoked_at IS NULL",
                            inp.identity,
                        )
                        if taken:
                            raise Conflict(
                                f"a token named {inp.name!r} is already live here; revoke it or pick "
                                "another name"
                            )
                    raise Conflict("a token with this id or hash already exists")
        return StoreTokenResult(token_id=inp.token_id, created=True)

    @activity.defn(name="mark_api_token_revoked")
    async def mark_api_token_revoked(self, inp: MarkTokenRevokedInput) -> MarkTokenRevokedResult:
        """Set revoked_at once; a second revocation (or a retry) keeps the first time and reports
        `changed=False`. The tenant must match the row's, so a tenant never revokes another's token."""
        with activity_errors():
            try:
                uuid.UUID(inp.token_id)
            except ValueError:
                raise NotFound("no such token", code=ErrorCode.TOKEN_NOT_FOUND) from None
            async with map_db_errors(), self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    """SELECT revoked_at, identity FROM api_tokens
                       WHERE id = $1::uuid AND tenant_id IS NOT DISTINCT FROM $2 FOR UPDATE""",
                    inp.token_id,
                    inp.tenant_id,
                )
                if row is None:
                    raise NotFound("no such token", code=ErrorCode.TOKEN_NOT_FOUND)
                if row["revoked_at"] is not None:
                    return MarkTokenRevokedResult(
                        token_id=inp.token_id,
                        revoked_at=row["revoked_at"],
                        identity=row["identity"] or "",
                        changed=False,
                    )
                revoked_at = await conn.fetchval(
                    "UPDATE api_tokens SET revoked_at = now() WHERE id = $1::uuid RETURNING revoked_at",
                    inp.token_id,
                )
        return MarkTokenRevokedResult(
            token_id=inp.token_id, revoked_at=revoked_at, identity=row["identity"] or "", changed=True
        )


class TokenNotifyActivities:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    @activity.defn(name="publish_token_invalidation")
    async def publish_token_invalidation(self, inp: TokenInvalidateInput) -> TokenInvalidateResult:
        """Tell every gateway to drop the token from its cache (id only: never its hash)."""
        message = json.dumps({"token_id": inp.token_id}, separators=(",", ":"))
        with activity_errors():
            async with map_redis_errors():
                receivers = await self.redis.publish(TOKEN_INVALIDATE_CHANNEL, message)
        return TokenInvalidateResult(receivers=int(receivers))


def token_activities(pool: asyncpg.Pool, redis: aioredis.Redis) -> list[object]:
    """The activity callables the worker registers for token workflows."""
    acts = TokenActivities(pool)
    return [
        acts.store_api_token,
        acts.mark_api_token_revoked,
        TokenNotifyActivities(redis).publish_token_invalidation,
    ]
