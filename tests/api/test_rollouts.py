"""Fleet rollouts through the operator API: start, status, pause/resume/abort, and what is refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.api.conftest import ADMIN, bearer, insert_token, new_token
from tests.workflows.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(120)]


async def _install(api: httpx.AsyncClient, tenant: str, name: str) -> None:
    resp = await api.post(
        f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": "1.0.0"}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text


async def _state(api: httpx.AsyncClient, rollout_id: str, want: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        resp = await api.get(f"/v1/rollouts/{rollout_id}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body if body["state"] == want else None

    return await eventually(check, timeout=60, what=f"rollout {want}")


@pytest.fixture
async def tenants(temporal_client: Client) -> AsyncIterator[list[str]]:
    prefix = uuid.uuid4().hex[:8]
    yield [f"t-{prefix}-{i}" for i in range(3)]
    # The install entity workflows are long-lived: end them with the test.
    async for wf in temporal_client.list_workflows(f"WorkflowId STARTS_WITH 'install/t-{prefix}-'"):
        try:
            await temporal_client.get_workflow_handle(wf.id).terminate("test finished")
        except RPCError:
            pass


async def test_rollout_through_the_api(api: httpx.AsyncClient, published: str, tenants: list[str]) -> None:
    for t in tenants:
        await _install(api, t, published)
    body = {
        "extension": published,
        "version": "1.1.0",
        "tenants": tenants,
        "waves": ["1", "100%"],
        "soak_seconds": 0.2,
    }
    resp = await api.post(
        "/v1/rollouts", json=body, headers={**ADMIN, "idempotency-key": f"r-{uuid.uuid4().hex}"}
    )
    assert resp.status_code == 202, resp.text
    started = resp.json()
    assert started["workflow_id"] == f"rollout/{started['rollout_id']}" and "/workflows/" in started["ui_url"]
    done = await _state(api, started["rollout_id"], "completed")
    assert (done["installs_total"], done["waves_total"], done["upgraded"]) == (3, 2, 3)
    assert done["outcomes"] is None
    detailed = (await api.get(f"/v1/rollouts/{started['rollout_id']}?outcomes=true", headers=ADMIN)).json()
    assert sorted(o["tenant_id"] for o in detailed["outcomes"]) == sorted(tenants)
    for t in tenants:
        status = (await api.get(f"/v1/tenants/{t}/installs/{published}", headers=ADMIN)).json()
        assert status["version"] == "1.1.0"
    # A finished rollout takes no more control: 409.
    resp = await api.post(f"/v1/rollouts/{started['rollout_id']}/pause", headers=ADMIN)
    assert resp.status_code == 409 and resp.json()["error"] == "conflict"


async def test_pause_resume_abort_through_the_api(
    api: httpx.AsyncClient, published: str, tenants: list[str]
) -> None:
    for t in tenants:
        await _install(api, t, published)
    body = {"extension": published, "version": "1.1.0", "all": True, "waves": ["1"], "soak_seconds": 60}
    started = (await api.post("/v1/rollouts", json=body, headers=ADMIN)).json()
    rid = started["rollout_id"]
    await _state(api, rid, "soaking")
    paused = await api.post(f"/v1/rollouts/{rid}/pause", json={"reason": "lunch"}, headers=ADMIN)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = await api.post(f"/v1/rollouts/{rid}/resume", headers=ADMIN)
    assert resumed.json()["paused"] is False
    aborted = await api.post(f"/v1/rollouts/{rid}/abort", json={"reason": "freeze"}, headers=ADMIN)
    assert aborted.status_code == 200, aborted.text
    done = await _state(api, rid, "aborted")
    assert done["reason"].endswith(": freeze") and done["rolled_back"] == 1
    for t in tenants:
        status = (await api.get(f"/v1/tenants/{t}/installs/{published}", headers=ADMIN)).json()
        assert status["version"] == "1.0.0"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"all": False}, 400, "invalid_request"),
        ({"tenants": ["a"]}, 400, "invalid_request"),  # both tenants and all
        ({"waves": ["10", "5"]}, 400, "invalid_request"),
        ({"waves": ["half"]}, 400, "invalid_request"),
        ({"version": "9.9.9"}, 404, "not_found"),
        ({"soak_seconds": -1}, 400, "invalid_request"),
    ],
)
async def test_bad_rollouts_are_refused_before_a_workflow_starts(
    api: httpx.AsyncClient, published: str, change: dict[str, Any], status: int, code: str
) -> None:
    body = {"extension": published, "version": "1.1.0", "all": True, **change}
    resp = await api.post("/v1/rollouts", json=body, headers=ADMIN)
    assert (resp.status_code, resp.json()["error"]) == (status, code), resp.text


async def test_a_tenant_token_cannot_roll_out(
    api: httpx.AsyncClient, published: str, db_pool: asyncpg.Pool
) -> None:
    token = new_token()
    await insert_token(db_pool, token, scopes=["installs:manage"], tenant_id="acme")
    body = {"extension": published, "version": "1.1.0", "all": True}
    resp = await api.post("/v1/rollouts", json=body, headers=bearer(token))
    assert resp.status_code == 403, resp.text
    missing = await api.get("/v1/rollouts/nope", headers=ADMIN)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    resp = await api.post("/v1/rollouts/nope/abort", headers=ADMIN)
    assert resp.status_code == 404
