"""Overload through the real gateway and a real runner process: one tenant's flood of spinning calls
is shed with 503 `runner_busy` instead of queueing, another tenant keeps being served, and calls the
gateway gave up on stop running in the runner.

The runner here has 2 threads and 8 queue slots, the gateway 8 runner connections; with the default
tenant share (0.5) the flooding tenant holds at most 4 connections, 1 thread and 5 admitted executions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory, Registry, RunnerProcess
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_runner(runner_data_dir: Path, database_server_url: str) -> Iterator[RunnerProcess]:
    runner = RunnerProcess(
        runner_data_dir,
        database_server_url,
        EXT_THREADS="2",
        EXT_QUEUE_DEPTH="8",
        EXT_FUEL_PER_MS="1000000000",
        EXT_DEBUG_SINK="memory",
    )
    runner.start()
    yield runner
    runner.kill()


async def admitted(runner: RunnerProcess) -> int:
    async with httpx.AsyncClient() as client:
        return int((await client.get(runner.url + "/healthz")).json()["admitted"])


async def test_a_flood_from_one_tenant_does_not_starve_another(
    gateway_factory: GatewayFactory, registry: Registry, small_runner: RunnerProcess
) -> None:
    flooder, victim = f"flood-{uuid.uuid4().hex[:8]}", f"victim-{uuid.uuid4().hex[:8]}"
    # No rate limit in the way: a shed call comes back at once and the flood calls again.
    await registry.install(flooder, "com.acme.spin", timeout_ms=3000, rps=1e6, burst=10**6)
    await registry.install(victim, "com.acme.spin", timeout_ms=3000)
    flood_token = await registry.token(flooder, "ext:read")
    victim_token = await registry.token(victim, "ext:read")
    gw = await gateway_factory(runner_url=small_runner.url, gateway_runner_connections=8)
    flood_status: Counter[str] = Counter()
    stop = time.monotonic() + 4.0

    async def flood() -> None:
        while time.monotonic() < stop:
            resp = await gw.call("GET", "/api/ext/com.acme.spin/loop", flood_token)
            flood_status[f"{resp.status_code} {resp.json()['error']}"] += 1
            if resp.status_code == 503:
                await asyncio.sleep(0.05)  # shed at once: a client backs off (and leaves CPU to the rest)

    flooders = [asyncio.create_task(flood()) for _ in range(16)]

    async def flood_in() -> bool:
        return await admitted(small_runner) >= 1

    await eventually(flood_in)
    victim_calls: list[tuple[int, float]] = []
    for _ in range(5):
        t0 = time.monotonic()
        resp = await gw.call("GET", "/api/ext/com.acme.spin/reflect/status", victim_token)
        victim_calls.append((resp.status_code, time.monotonic() - t0))
        await asyncio.sleep(0.2)
    await asyncio.gather(*flooders)

    # Served, or at worst shed at once: never left waiting behind the flood (a 3 s spin).
    assert all(status in (200, 503) for status, _ in victim_calls), victim_calls
    assert all(elapsed < 2.5 for _, elapsed in victim_calls), victim_calls
    assert any(status == 200 for status, _ in victim_calls), victim_calls
    assert flood_status["503 runner_busy"] > 0, flood_status
    await eventually(lambda: _idle(small_runner), deadline_s=10)


async def _idle(runner: RunnerProcess) -> bool:
    return await admitted(runner) == 0


async def test_a_call_the_gateway_abandoned_stops_running(
    gateway_factory: GatewayFactory, registry: Registry, small_runner: RunnerProcess
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    # The guest may run 20 s; the gateway waits 0.5 s.
    await registry.install(tenant, "com.acme.spin", timeout_ms=20_000)
    token = await registry.token(tenant, "ext:read")
    gw = await gateway_factory(runner_url=small_runner.url, gateway_timeout_ms=500)
    await eventually(lambda: _idle(small_runner), deadline_s=10)
    resp = await gw.call("GET", "/api/ext/com.acme.spin/loop", token)
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"] == "handler_timeout"
    # The runner learns the gateway left and ends the guest, instead of spinning for 20 s.
    await eventually(lambda: _idle(small_runner), deadline_s=5)
