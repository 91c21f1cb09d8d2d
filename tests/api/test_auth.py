"""Bearer-token authentication and authorization of the operator API (real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from api.auth import Principal, TokenAuthenticator
from core.errors import Forbidden, Unauthorized
from tests.api.conftest import ADMIN, bearer, insert_token, new_token

pytestmark = pytest.mark.integration


def _assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == resp.headers["x-request-id"]


async def test_missing_and_unknown_tokens_are_401(api: httpx.AsyncClient) -> None:
    _assert_error(await api.get("/v1/extensions"), 401, "unauthenticated")
    _assert_error(await api.get("/v1/extensions", headers=bearer("ext_nope")), 401, "unauthenticated")
    _assert_error(
        await api.get("/v1/extensions", headers={"authorization": "Basic eDp5"}), 401, "unauthenticated"
    )


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    resp = await api.get("/healthz", headers={"x-request-id": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    made = await api.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces" and len(made.headers["x-request-id"]) == 32


async def test_admin_bootstrap_token_reads_everything(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/extensions", headers=ADMIN)).json() == []
    assert (await api.get("/v1/installs", headers=ADMIN)).json() == []
    assert (await api.get("/v1/audit", headers=ADMIN)).json() == []


async def test_expired_and_revoked_tokens_are_401(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    expired, revoked, good = new_token(), new_token(), new_token()
    await insert_token(db_pool, expired, scopes=["admin"], expires_at=now - timedelta(seconds=1))
    await insert_token(db_pool, revoked, scopes=["admin"], revoked_at=now)
    await insert_token(db_pool, good, scopes=["admin"], expires_at=now + timedelta(hours=1))
    resp = await api.get("/v1/extensions", headers=bearer(expired))
    _assert_error(resp, 401, "unauthenticated")
    assert "expired" in resp.json()["message"]
    resp = await api.get("/v1/extensions", headers=bearer(revoked))
    _assert_error(resp, 401, "unauthenticated")
    assert "revoked" in resp.json()["message"]
    assert (await api.get("/v1/extensions", headers=bearer(good))).status_code == 200


async def test_scopes_are_enforced(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    reader = new_token()
    await insert_token(db_pool, reader, scopes=["ext:read"], tenant_id="acme")
    assert (await api.get("/v1/installs", headers=bearer(reader))).status_code == 200
    body = {"extension": "com.acme.x", "version": "1.0.0"}
    _assert_error(
        await api.post("/v1/tenants/acme/installs", json=body, headers=bearer(reader)), 403, "forbidden"
    )
    _assert_error(
        await api.post("/v1/tokens", json={"scopes": ["ext:read"]}, headers=bearer(reader)), 403, "forbidden"
    )
    _assert_error(await api.get("/v1/audit", headers=bearer(reader)), 403, "forbidden")
    # no scope for uploads: refused before a byte is staged
    _assert_error(
        await api.post(
            "/v1/bundles", content=b"x", headers={**bearer(reader), "x-content-hash": "sha256:" + "0" * 64}
        ),
        403,
        "forbidden",
    )


async def test_tenant_tokens_stay_in_their_tenant(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    manager = new_token()
    await insert_token(db_pool, manager, scopes=["installs:manage", "trust:manage"], tenant_id="acme")
    h = bearer(manager)
    _assert_error(await api.get("/v1/installs?tenant=globex", headers=h), 403, "tenant_mismatch")
    _assert_error(await api.get("/v1/tenants/globex/installs/com.acme.x", headers=h), 403, "tenant_mismatch")
    _assert_error(
        await api.post("/v1/tenants/globex/installs/com.acme.x/disable", headers=h), 403, "tenant_mismatch"
    )
    _assert_error(await api.get("/v1/audit?tenant=globex", headers=h), 403, "tenant_mismatch")
    _assert_error(
        await api.get("/v1/operations/install/globex/com.acme.x", headers=h), 403, "tenant_mismatch"
    )
    # own tenant: allowed (and empty)
    assert (await api.get("/v1/installs", headers=h)).json() == []
    _assert_error(await api.get("/v1/tenants/acme/installs/com.acme.x", headers=h), 404, "not_found")
    # the trust policy is global: a tenant token cannot change it whatever its scopes
    resp = await api.post("/v1/trust/keys", json={"publisher": "acme", "public_key_pem": "x"}, headers=h)
    _assert_error(resp, 403, "forbidden")


async def test_lookups_are_cached_for_the_ttl(db_pool: asyncpg.Pool) -> None:
    now = [0.0]
    auth = TokenAuthenticator(
        admin_token=SecretStr(""), pool=_provider(db_pool), ttl=5.0, clock=lambda: now[0]
    )
    token = new_token()
    token_id = await insert_token(db_pool, token, scopes=["ext:read", "bogus"], tenant_id="acme")
    principal = await auth.authenticate(token)
    assert principal == Principal(
        subject=f"token:{token_id}", scopes=frozenset({"ext:read"}), tenant_id="acme", token_id=token_id
    )
    await db_pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token_id)
    assert (await auth.authenticate(token)).token_id == token_id  # still cached
    now[0] = 6.0
    with pytest.raises(Unauthorized, match="revoked"):
        await auth.authenticate(token)


async def test_empty_admin_token_never_matches(db_pool: asyncpg.Pool) -> None:
    auth = TokenAuthenticator(admin_token=SecretStr(""), pool=_provider(db_pool))
    for candidate in ("", None):
        with pytest.raises(Unauthorized):
            await auth.authenticate(candidate)


def test_admin_implies_every_scope_and_tenant_checks() -> None:
    admin = Principal(subject="admin", scopes=frozenset({"admin"}))
    admin.require("trust:manage")
    admin.require_tenant("anyone")
    tenant = Principal(subject="token:1", scopes=frozenset({"ext:read"}), tenant_id="acme")
    with pytest.raises(Forbidden) as info:
        tenant.require_tenant(None)
    assert info.value.code.value == "tenant_mismatch"
    with pytest.raises(Forbidden):
        tenant.require("installs:manage")


def _provider(pool: asyncpg.Pool):  # type: ignore[no-untyped-def]
    async def get() -> asyncpg.Pool:
        return pool

    return get
