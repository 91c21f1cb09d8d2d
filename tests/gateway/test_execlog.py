"""One execution_log row per tenant call, written in batches off the request path."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.gateway.conftest import ADMIN_TOKEN, Gateway, GatewayFactory, Registry, eventually

pytestmark = pytest.mark.integration


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def rows_for(registry: Registry, *request_ids: str) -> dict[str, dict[str, Any]]:
    rows = await registry.pool.fetch(
        "SELECT * FROM execution_log WHERE request_id = ANY($1)", list(request_ids)
    )
    return {r["request_id"]: dict(r) for r in rows}


async def test_rows_describe_calls_without_content(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    inst = await registry.install(a, "com.acme.app", rps=1000, burst=1000)
    token = await registry.token(a, "ext:read", "ext:write")
    base = "/api/ext/com.acme.app"
    calls = {
        "ok": await gateway.call("POST", f"{base}/reflect/items/5", token, content=b"top-secret-body"),
        "handler_error": await gateway.call("GET", f"{base}/teapot", token),
        "upstream_error": await gateway.call("GET", f"{base}/trap", token),
        "policy_denied": await gateway.call("GET", f"{base}/undeclared", token),
        "operator": await gateway.call(
            "GET", f"{base}/reflect/status", ADMIN_TOKEN, headers={"x-extplane-tenant": a}
        ),
    }
    ids = {k: r.headers["x-request-id"] for k, r in calls.items()}

    async def all_written() -> dict[str, dict[str, Any]] | None:
        found = await rows_for(registry, *ids.values())
        return found if len(found) == len(ids) else None

    rows = await eventually(all_written)
    ok = rows[ids["ok"]]
    version = await registry.pool.fetchval(
        "SELECT v.version FROM installs i JOIN versions v ON v.id = i.version_id WHERE i.id = $1",
        inst.install_id,
    )
    assert ok["tenant_id"] == a
    assert ok["extension_name"] == "com.acme.app"
    assert ok["version"] == version
    assert str(ok["install_id"]) == inst.install_id
    assert ok["method"] == "POST"
    assert ok["endpoint"] == "/reflect/items/:id"  # the template, never the concrete path
    assert (ok["status"], ok["outcome"]) == (200, "ok")
    assert 0 < ok["duration_ms"] < 10_000
    assert (rows[ids["handler_error"]]["status"], rows[ids["handler_error"]]["outcome"]) == (
        418,
        "handler_error",
    )
    assert (rows[ids["upstream_error"]]["status"], rows[ids["upstream_error"]]["outcome"]) == (
        502,
        "upstream_error",
    )
    denied = rows[ids["policy_denied"]]
    assert (denied["status"], denied["outcome"], denied["endpoint"]) == (404, "policy_denied", None)
    assert rows[ids["operator"]]["tenant_id"] == a
    # Never bodies, headers or secrets: the row has no place for them and carries none of the call's data.
    assert "top-secret-body" not in repr(rows) and token not in repr(rows)


async def test_unauthenticated_calls_have_no_tenant_and_no_row(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    anonymous = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status")
    assert anonymous.status_code == 401
    known = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)

    async def written() -> bool:
        return bool(await rows_for(registry, known.headers["x-request-id"]))

    await eventually(written)  # rows written after the anonymous call's would-be row
    assert not await rows_for(registry, anonymous.headers["x-request-id"])


async def test_rate_limited_rows_and_metrics(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", rps=0.01, burst=1)
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    first, second = await gateway.call("GET", url, token), await gateway.call("GET", url, token)
    assert (first.status_code, second.status_code) == (200, 429)

    async def written() -> dict[str, dict[str, Any]] | None:
        found = await rows_for(registry, second.headers["x-request-id"])
        return found or None

    row = (await eventually(written))[second.headers["x-request-id"]]
    assert (row["status"], row["outcome"]) == (429, "rate_limited")
    metrics = (await gateway.client.get("/metrics")).text
    assert 'gateway_requests_total{outcome="rate_limited",status="429"} 1.0' in metrics
    assert "gateway_execlog_written_total" in metrics
    assert "gateway_execlog_dropped_total 0.0" in metrics


async def test_full_queue_drops_and_counts(gateway_factory: GatewayFactory, registry: Registry) -> None:
    gw: Gateway = await gateway_factory(gateway_log_queue=2, gateway_log_flush_ms=60_000)
    a = tenant()
    await registry.install(a, "com.acme.app", rps=1000, burst=1000)
    token = await registry.token(a, "ext:read")
    for _ in range(6):
        assert (await gw.call("GET", "/api/ext/com.acme.app/reflect/status", token)).status_code == 200
    metrics = (await gw.client.get("/metrics")).text
    # two queued (the writer waits out its flush interval without taking any), four dropped
    assert "gateway_execlog_dropped_total 4.0" in metrics
