"""Input the registry cannot hold is refused at the API with a stable code, before any workflow starts:
tenant ids outside the documented alphabet, and NUL or lone surrogates in free-text fields."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.api.conftest import ADMIN, bearer, insert_token, new_token

pytestmark = pytest.mark.integration

BAD_TENANTS = ["a b", "-leading", "x:y", "é", "t" * 129, "a%00b"]


@pytest.mark.parametrize("tenant", BAD_TENANTS)
async def test_tenant_ids_outside_the_alphabet_are_refused(api: httpx.AsyncClient, tenant: str) -> None:
    for method, url, body in [
        ("POST", f"/v1/tenants/{tenant}/installs", {"extension": "com.acme.x", "version": "1.0.0"}),
        ("PUT", f"/v1/tenants/{tenant}/installs/com.acme.x/config", {"config": {}}),
        ("GET", f"/v1/tenants/{tenant}/installs/com.acme.x", None),
        ("GET", f"/v1/tenants/{tenant}/executions", None),
    ]:
        resp = await api.request(method, url, json=body, headers=ADMIN)
        assert resp.status_code == 400, (url, resp.text)
        message = resp.json()["message"]
        assert resp.json()["error"] == "invalid_request", (url, resp.text)
        # A NUL never reaches the tenant rule: the check of every path parameter refuses it first.
        assert "tenant id must be" in message or message.startswith("path parameter 'tenant' contains a NUL")
    token = await api.post("/v1/tokens", json={"tenant_id": tenant, "scopes": ["ext:read"]}, headers=ADMIN)
    assert (token.status_code, token.json()["error"]) == (400, "invalid_request")


GOOD_TENANTS = ["acme", "Tenant_A.eu-1", "3f2b9c1e-8d4a-4c6e-9f3b-2a1d5e7c9b0a", "t" * 128]


@pytest.mark.parametrize("tenant", GOOD_TENANTS)
async def test_documented_tenant_ids_pass_validation(api: httpx.AsyncClient, tenant: str) -> None:
    resp = await api.get(f"/v1/tenants/{tenant}/installs/com.acme.x", headers=ADMIN)
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found"), resp.text


async def test_a_tenant_token_gets_400_not_a_hint_for_an_invalid_tenant(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    token = new_token()
    await insert_token(db_pool, token, scopes=["installs:manage"], tenant_id="acme")
    resp = await api.get("/v1/tenants/a b/installs/com.acme.x", headers=bearer(token))
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    resp = await api.get("/v1/tenants/globex/installs/com.acme.x", headers=bearer(token))
    assert (resp.status_code, resp.json()["error"]) == (403, "tenant_mismatch")


@pytest.mark.parametrize(
    ("url", "raw", "fragment"),
    [
        ("/v1/tokens", b'{"tenant_id": "acme", "scopes": ["ext:read"], "name": "ci\\u0000"}', "name: "),
        # A lone surrogate already fails FastAPI's JSON decoding of a str field: same code, same field.
        ("/v1/tokens", b'{"tenant_id": "acme", "scopes": ["ext:read"], "name": "\\ud83d"}', "name: "),
        ("/v1/trust/keys", b'{"publisher": "acme\\u0000", "public_key_pem": "x"}', "publisher: "),
        ("/v1/trust/keys/ed25519:00/revoke", b'{"reason": "stolen\\u0000"}', "reason: "),
    ],
)
async def test_free_text_postgres_cannot_store_is_refused(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, url: str, raw: bytes, fragment: str
) -> None:
    tokens_before = await db_pool.fetchval("SELECT count(*) FROM api_tokens")
    resp = await api.post(url, content=raw, headers={**ADMIN, "content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request" and body["message"].startswith(fragment), body
    assert "NUL" in body["message"] or b"\\ud83d" in raw, body
    assert "\x00" not in resp.text
    assert await db_pool.fetchval("SELECT count(*) FROM api_tokens") == tokens_before
