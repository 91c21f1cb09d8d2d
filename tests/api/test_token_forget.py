"""`TokenAuthenticator.forget_token` (what a revocation message triggers on a gateway) against real
Postgres, with a fake clock so only the forgetting, never the TTL, can make a revoked token fail."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import SecretStr

from api.auth import TokenAuthenticator
from api.gateway.auth import GatewayAuth
from core.errors import Unauthorized
from tests.api.conftest import insert_token, new_token

pytestmark = pytest.mark.integration


def _authenticator(pool: asyncpg.Pool) -> TokenAuthenticator:
    async def provider() -> asyncpg.Pool:
        return pool

    return TokenAuthenticator(admin_token=SecretStr(""), pool=provider, ttl=600.0, clock=lambda: 0.0)


async def test_forgetting_one_token_drops_its_hash_and_session_entries_only(db_pool: asyncpg.Pool) -> None:
    auth = _authenticator(db_pool)
    revoked, kept = new_token(), new_token()
    revoked_id = await insert_token(db_pool, revoked, scopes=["ext:read"], tenant_id="acme")
    kept_id = await insert_token(db_pool, kept, scopes=["ext:read"], tenant_id="acme")
    for token in (revoked, kept):
        await auth.authenticate(token)
    assert await auth.session_valid(f"token:{revoked_id}")
    await db_pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1::uuid", revoked_id)
    await db_pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1::uuid", kept_id)
    # Cached: the clock never moves, so without forgetting both would be served for ever.
    assert (await auth.authenticate(revoked)).token_id == revoked_id
    GatewayAuth(auth).on_token_message(f'{{"token_id":"{revoked_id}"}}'.encode())
    with pytest.raises(Unauthorized, match="revoked"):
        await auth.authenticate(revoked)
    assert not await auth.session_valid(f"token:{revoked_id}")
    assert (await auth.authenticate(kept)).token_id == kept_id  # another token's entry stays


@pytest.mark.parametrize("raw", [b"not json", b"{}", b'["token_id"]', b'{"other": 1}'])
async def test_malformed_messages_forget_nothing(db_pool: asyncpg.Pool, raw: bytes) -> None:
    auth = _authenticator(db_pool)
    token = new_token()
    token_id = await insert_token(db_pool, token, scopes=["ext:read"])
    await auth.authenticate(token)
    await db_pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1::uuid", token_id)
    gateway = GatewayAuth(auth)
    gateway.on_token_message(raw)
    assert gateway.revocations == 0
    assert (await auth.authenticate(token)).token_id == token_id
