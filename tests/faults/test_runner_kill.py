"""Fault: the runner is SIGKILLed. The gateway answers 502 `bad_gateway` at once (no hanging call), and
serves again as soon as a runner is back on its port, without a gateway restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.harness import FaultStack, eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(180)]


async def test_runner_killed_gives_502_fast_then_recovers(fault_stack: FaultStack) -> None:
    tenant, ext = await fault_stack.ready_extension()
    async with fault_stack.gateway(tenant) as gw:
        ok = await gw.get(f"/api/ext/{ext}/hello")
        assert ok.status_code == 200, ok.text

        fault_stack.kill("runner")
        for _ in range(5):
            t0 = time.monotonic()
            resp = await gw.get(f"/api/ext/{ext}/hello")
            elapsed = time.monotonic() - t0
            assert resp.status_code == 502, resp.text
            assert resp.json()["error"] == "bad_gateway"
            # A bound against a connect-timeout wait, not a speed claim.
            assert elapsed < 5.0, f"a dead runner must fail fast, took {elapsed:.2f}s"

        await asyncio.to_thread(fault_stack.restart_app, "runner")

        async def served() -> bool:
            return (await gw.get(f"/api/ext/{ext}/hello")).status_code == 200

        await eventually(served, timeout=30, what="served again after the runner restart")
        statuses = [(await gw.get(f"/api/ext/{ext}/hello")).status_code for _ in range(20)]
        assert statuses == [200] * 20
