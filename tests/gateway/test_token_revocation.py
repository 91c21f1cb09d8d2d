"""Revoking a token through the operator API (RevokeToken workflow) reaches the gateway: the workflow
publishes on TOKEN_INVALIDATE_CHANNEL and the gateway drops the cached token at once. The gateway here
caches tokens for 10 minutes, so only the invalidation can make it refuse the token within the test;
without a message the TTL is the bound (tests/api/test_auth.py checks that with a fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.operator.app import create_app
from api.operator.settings import OperatorSettings

# data_dir, keyring, settings, temporal_client, worker: the operator-API fixtures shared with tests/api.
from tests.api.conftest import (  # noqa: F401
    ADMIN,
    data_dir,
    keyring,
    settings,
    temporal_client,
    worker,
)
from tests.gateway.conftest import Gateway, GatewayFactory, Registry, eventually
from tests.gateway.test_policy import assert_error

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

LONG_TTL_S = 600.0


@pytest.fixture
async def operator_api(
    settings: OperatorSettings,  # noqa: F811
    worker: None,  # noqa: F811
) -> AsyncIterator[httpx.AsyncClient]:
    """The operator API over the gateway's database, with a worker running the token workflows."""
    app: FastAPI = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api", timeout=60) as c:
        yield c
    await app.state.resources.aclose()


async def create_token(api: httpx.AsyncClient, tenant: str, name: str, *scopes: str) -> dict[str, str]:
    resp = await api.post(
        "/v1/tokens", json={"tenant_id": tenant, "scopes": list(scopes), "name": name}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    out: dict[str, str] = resp.json()
    return out


async def revoke(api: httpx.AsyncClient, token_id: str) -> dict[str, object]:
    resp = await api.post(f"/v1/tokens/{token_id}/revoke", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    out: dict[str, object] = resp.json()
    return out


async def test_revoked_token_is_refused_by_a_gateway_that_had_it_cached(
    gateway_factory: GatewayFactory, registry: Registry, operator_api: httpx.AsyncClient
) -> None:
    gw: Gateway = await gateway_factory(gateway_token_ttl_s=LONG_TTL_S)
    await gw.listening()
    await registry.install("acme", "com.acme.app")
    leaked = await create_token(operator_api, "acme", "leaked", "ext:read")
    kept = await create_token(operator_api, "acme", "kept", "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    for token in (leaked, kept):
        assert (await gw.call("GET", url, token["token"])).status_code == 200  # now cached
    res = gw.app.resources
    assert res is not None
    lookups = res.auth.authenticator.cache.counts["lookup"]
    assert (await gw.call("GET", url, leaked["token"])).status_code == 200
    assert res.auth.authenticator.cache.counts["lookup"] == lookups  # served from the cache

    out = await revoke(operator_api, leaked["token_id"])
    assert out["notified_gateways"] >= 1  # type: ignore[operator]

    async def refused() -> bool:
        return (await gw.call("GET", url, leaked["token"])).status_code == 401

    await eventually(refused, deadline_s=30)
    assert res.auth.revocations >= 1
    assert_error(await gw.call("GET", url, leaked["token"]), 401, "unauthenticated")
    # Only that token: the other one of the same tenant is still served (from the cache).
    assert (await gw.call("GET", url, kept["token"])).status_code == 200
