"""The token activity: one `api_tokens` row holding only the token's sha256, idempotent on the id.

The SQL lives here rather than in `registry.write` because that package belongs to the publish and
install lifecycle; it is the same kind of single-statement, business-keyed write (INSERT … ON CONFLICT).
"""

from __future__ import annotations

import re

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from core.db import map_db_errors
from core.errors import Conflict, InvalidInput
from schema.payloads.tokens import SCOPES, StoreTokenInput, StoreTokenResult

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


class TokenActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="store_api_token")
    async def store_api_token(self, inp: StoreTokenInput) -> StoreTokenResult:
        """Insert the token row; a retry with the same id and hash is a no-op."""
        with activity_errors():
            _validate(inp)
            async with map_db_errors():
                inserted = await self.pool.fetchval(
                    """INSERT INTO api_tokens (id, token_hash, tenant_id, scopes, name, expires_at)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT DO NOTHING RETURNING id""",
                    inp.token_id,
                    inp.token_hash,
                    inp.tenant_id,
                    sorted(set(inp.scopes)),
                    inp.name,
                    inp.expires_at,
                )
                if inserted is None:
                    existing = await self.pool.fetchval(
                        "SELECT token_hash FROM api_tokens WHERE id = $1", inp.token_id
                    )
                    # Same id with the same hash is a retry; anything else collides with another token.
                    if existing != inp.token_hash:
                        raise Conflict("a token with this id or hash already exists")
        return StoreTokenResult(token_id=inp.token_id, created=inserted is not None)


def token_activities(pool: asyncpg.Pool) -> list[object]:
    """The activity callables the worker registers for token workflows."""
    acts = TokenActivities(pool)
    return [acts.store_api_token]
