"""execution_log says who called (principal, operator) and what the guest cost (fuel_consumed)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.auth import token_hash
from tests.gateway.conftest import ADMIN_TOKEN, Gateway, GatewayFactory, Registry, eventually, free_port

pytestmark = pytest.mark.integration

APP = "/api/ext/com.acme.app"


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def token_id(registry: Registry, token: str) -> str:
    return str(
        await registry.pool.fetchval("SELECT id FROM api_tokens WHERE token_hash = $1", token_hash(token))
    )


async def logged(registry: Registry, *responses: httpx.Response) -> list[dict[str, Any]]:
    """The execution_log rows of `responses`, in their order, once all are written (batched, async)."""
    ids = [r.headers["x-request-id"] for r in responses]

    async def written() -> dict[str, dict[str, Any]] | None:
        rows = await registry.pool.fetch("SELECT * FROM execution_log WHERE request_id = ANY($1)", ids)
        found = {r["request_id"]: dict(r) for r in rows}
        return found if len(found) == len(ids) else None

    found = await eventually(written)
    return [found[i] for i in ids]


async def test_tenant_and_operator_calls_record_principal_and_fuel(
    gateway: Gateway, registry: Registry
) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", rps=1000, burst=1000)
    token = await registry.token(a, "ext:read", "ext:write")
    global_admin = await registry.token(None, "admin")
    own = await gateway.call(
        "POST", f"{APP}/reflect/items/1", token, content=b"body-never-logged", headers={"x-secret": "hdr"}
    )
    as_operator = await gateway.call(
        "GET", f"{APP}/reflect/status", ADMIN_TOKEN, headers={"x-extplane-tenant": a}
    )
    as_global_token = await gateway.call(
        "GET", f"{APP}/reflect/status", global_admin, headers={"x-extplane-tenant": a}
    )
    assert [r.status_code for r in (own, as_operator, as_global_token)] == [200, 200, 200]

    mine, bootstrap, global_row = await logged(registry, own, as_operator, as_global_token)
    assert (mine["principal"], mine["operator"]) == (f"token:{await token_id(registry, token)}", False)
    assert (bootstrap["principal"], bootstrap["operator"]) == ("admin", True)
    assert (global_row["principal"], global_row["operator"]) == (
        f"token:{await token_id(registry, global_admin)}",
        True,
    )
    for row in (mine, bootstrap, global_row):
        assert row["tenant_id"] == a
        assert isinstance(row["fuel_consumed"], int) and row["fuel_consumed"] > 0, row
    # The principal is the token's id, never the token; no body or header value has a column.
    rows = repr([mine, bootstrap, global_row])
    for secret in (token, global_admin, ADMIN_TOKEN, "body-never-logged", "hdr"):
        assert secret not in rows


async def test_calls_that_ran_no_guest_have_no_fuel(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", rps=0.01, burst=1)
    token = await registry.token(a, "ext:read")
    undeclared = await gateway.call("GET", f"{APP}/undeclared", token)
    ran = await gateway.call("GET", f"{APP}/reflect/status", token)
    limited = await gateway.call("GET", f"{APP}/reflect/status", token)
    assert [r.status_code for r in (undeclared, ran, limited)] == [404, 200, 429]

    denied, ok, rate_limited = await logged(registry, undeclared, ran, limited)
    assert (denied["outcome"], denied["fuel_consumed"]) == ("policy_denied", None)
    assert (rate_limited["outcome"], rate_limited["fuel_consumed"]) == ("rate_limited", None)
    assert ok["fuel_consumed"] > 0
    # Refused calls still say who was refused.
    assert {denied["principal"], rate_limited["principal"]} == {f"token:{await token_id(registry, token)}"}
    assert not denied["operator"] and not rate_limited["operator"]


async def test_guest_failures_record_the_fuel_they_burnt(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", timeout_ms=200)
    token = await registry.token(a, "ext:read")
    trapped = await gateway.call("GET", f"{APP}/trap", token)
    deadline = await gateway.call("GET", f"{APP}/loop", token)
    assert (trapped.status_code, deadline.status_code) == (502, 504)

    trap_row, loop_row = await logged(registry, trapped, deadline)
    assert (trap_row["outcome"], loop_row["outcome"]) == ("upstream_error", "timeout")
    # Only > 0 for the deadline: the runner's figure for a guest interrupted mid-loop is a lower bound
    # (it reports the same whether the loop ran 100 ms or 1 s), see docs/gateway.md.
    assert trap_row["fuel_consumed"] > 0 and loop_row["fuel_consumed"] > 0


async def test_runner_unreachable_has_no_fuel(gateway_factory: GatewayFactory, registry: Registry) -> None:
    gw: Gateway = await gateway_factory(runner_url=f"http://127.0.0.1:{free_port()}")
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    resp = await gw.call("GET", f"{APP}/reflect/status", token)
    assert resp.status_code == 502
    (row,) = await logged(registry, resp)
    assert (row["outcome"], row["fuel_consumed"]) == ("upstream_error", None)
    assert row["principal"] == f"token:{await token_id(registry, token)}"
