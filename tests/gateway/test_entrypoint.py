"""`python -m api.gateway` as deployed: uvicorn, several workers, real sockets."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.gateway.conftest import (
    Registry,
    eventually,
    publish_invalidation,
)

# Starting `python -m api.gateway` (uvicorn workers) takes up to tens of seconds on busy cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_served_by_uvicorn_workers(gateway_proc: str, registry: Registry, redis_url: str) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    inst = await registry.install(tenant, "com.acme.app")
    token = await registry.token(tenant, "ext:read", "ext:write")
    url = f"{gateway_proc}/api/ext/com.acme.app/reflect/status"
    headers = {"authorization": f"Bearer {token}", "connection": "close"}  # spread over both workers
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{gateway_proc}/healthz")
        assert health.status_code == 200 and health.headers["content-type"] == "application/json"
        for _ in range(6):
            resp = await client.get(url, headers=headers)
            assert resp.status_code == 200, resp.text
            assert resp.text.startswith("GET /reflect/status?")
        metrics = await client.get(f"{gateway_proc}/metrics")
        assert "gateway_requests_total" in metrics.text

        # Every worker holds its own cache; one published invalidation reaches them all.
        await registry.set_status(inst, "disabled")

        async def all_gone() -> bool:
            await publish_invalidation(redis_url, inst)
            codes = [(await client.get(url, headers=headers)).status_code for _ in range(6)]
            return codes == [404] * 6

        await eventually(all_gone, deadline_s=10, interval_s=0.1)


async def test_oversized_declared_body_is_refused_before_it_is_sent(
    gateway_proc: str, registry: Registry
) -> None:
    """413 from Content-Length alone: the gateway answers without waiting for 11 MiB to arrive."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(tenant, "com.acme.app")
    token = await registry.token(tenant, "ext:write")
    host, port = gateway_proc.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/ext/com.acme.app/reflect/items/1 HTTP/1.1\r\nhost: x\r\n"
            + f"authorization: Bearer {token}\r\n".encode()
            + b"content-length: 11534336\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")
