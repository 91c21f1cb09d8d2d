"""Fault: Redis is SIGKILLed. As documented (docs/gateway.md, docs/debug-stream.md): the rate limiter
fails closed, so executes through the gateway answer 503 `rate_limiter_unavailable` (never fail-open),
and an open debug stream gets a `warning` event. When a redis-server is back on the same port (empty),
calls succeed again and the stream says `resumed`, with no restart of the gateway or the runner."""

from __future__ import annotations

import asyncio

import pytest

from tests.debug.test_debug_stream import sse
from tests.faults.harness import FaultStack, eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(180)]


async def test_redis_killed_fails_closed_then_recovers(fault_stack: FaultStack) -> None:
    tenant, ext = await fault_stack.ready_extension()
    async with fault_stack.api() as api:
        resp = await api.post("/v1/tokens", json={"tenant_id": tenant, "scopes": ["ext:read", "ext:debug"]})
        assert resp.status_code == 200, resp.text
        token = resp.json()["token"]

    async with (
        fault_stack.gateway(tenant) as gw,
        sse(fault_stack.env["EXT_GATEWAY_URL"], token, {"extension": ext, "tail": 0}) as reader,
    ):
        assert (await gw.get(f"/api/ext/{ext}/hello")).status_code == 200

        fault_stack.kill("redis")
        warning = await reader.until(lambda e: e.event == "warning", timeout_s=30)
        assert warning.data["code"] == "debug_stream_unavailable"

        async def refused() -> bool:
            r = await gw.get(f"/api/ext/{ext}/hello")
            return r.status_code == 503 and r.json()["error"] == "rate_limiter_unavailable"

        await eventually(refused, timeout=15, what="503 rate_limiter_unavailable")
        for _ in range(10):
            r = await gw.get(f"/api/ext/{ext}/hello")
            assert r.status_code == 503 and r.json()["error"] == "rate_limiter_unavailable", r.text

        await asyncio.to_thread(fault_stack.restart_redis)

        async def served() -> bool:
            return (await gw.get(f"/api/ext/{ext}/hello")).status_code == 200

        await eventually(served, timeout=30, what="served again after the Redis restart")
        statuses = [(await gw.get(f"/api/ext/{ext}/hello")).status_code for _ in range(20)]
        assert statuses == [200] * 20
        await reader.until(lambda e: e.event == "resumed", timeout_s=30)
