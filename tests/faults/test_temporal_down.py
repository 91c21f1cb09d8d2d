"""Fault: the Temporal dev server is SIGKILLed. The hot path never calls Temporal, so tenant traffic
through the gateway is unaffected; the operator API answers 503 `control_plane_unavailable` for changes
(and keeps serving registry reads, which do not need Temporal)."""

from __future__ import annotations

import pytest

from tests.faults.harness import FaultStack

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(180)]


async def test_temporal_down_leaves_tenant_traffic_alone(fault_stack: FaultStack) -> None:
    tenant, ext = await fault_stack.ready_extension()
    fault_stack.kill("temporal")
    async with fault_stack.gateway(tenant) as gw:
        statuses = [(await gw.get(f"/api/ext/{ext}/hello")).status_code for _ in range(50)]
    assert statuses == [200] * 50

    async with fault_stack.api(timeout=60) as api:
        change = await api.put(f"/v1/tenants/{tenant}/installs/{ext}/limits", json={"rps": 10})
        assert change.status_code == 503, change.text
        assert change.json()["error"] == "control_plane_unavailable"
        read = await api.get(f"/v1/tenants/{tenant}/installs/{ext}")
        assert read.status_code == 200 and read.json()["version"] == "1.0.0", read.text
