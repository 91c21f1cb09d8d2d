"""A UI session minted from a token ends when that token is revoked through the operator API: the
RevokeToken workflow's invalidation drops the token's cached session check (`session_valid`, keyed by
the token id) on the gateway, whose token cache here would otherwise hold it for 10 minutes."""

from __future__ import annotations

import httpx
import pytest

from api.gateway.ui import COOKIE

# data_dir, keyring, settings, temporal_client, worker, operator_api: fixtures of the operator API.
from tests.api.conftest import data_dir, keyring, settings, temporal_client, worker  # noqa: F401
from tests.gateway.conftest import Gateway, GatewayFactory, eventually
from tests.gateway.test_token_revocation import LONG_TTL_S, create_token, operator_api, revoke  # noqa: F401
from tests.ui.conftest import UiRegistry
from tests.ui.test_gateway_ui import session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.temporal]
NAME = "com.acme.ui"


async def test_revoking_through_the_api_ends_the_tokens_ui_sessions(
    gateway_factory: GatewayFactory,
    ui_registry: UiRegistry,
    operator_api: httpx.AsyncClient,  # noqa: F811
) -> None:
    gw: Gateway = await gateway_factory(gateway_token_ttl_s=LONG_TTL_S)
    await gw.listening()
    await ui_registry.install_ui("acme", NAME)
    leaked = await create_token(operator_api, "acme", "browser", "ext:read")
    kept = await create_token(operator_api, "acme", "other-browser", "ext:read")
    cookie = session_cookie(await gw.call("GET", f"/ext/{NAME}", leaked["token"]))
    other = session_cookie(await gw.call("GET", f"/ext/{NAME}", kept["token"]))

    async def page(value: str) -> int:
        return (await gw.client.get(f"/ext/{NAME}", headers={"cookie": f"{COOKIE}={value}"})).status_code

    assert await page(cookie) == 200  # the session check is now cached for LONG_TTL_S
    await revoke(operator_api, leaked["token_id"])

    async def ended() -> bool:
        return await page(cookie) == 401

    await eventually(ended, deadline_s=30)
    assert await page(other) == 200
