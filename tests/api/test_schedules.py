"""Schedules through the operator API: listing with Temporal state and last run, pause/resume, the
interplay with disable/enable, run-now refusals, tenant isolation, and upgrades that drop a scheduled
endpoint, against the real worker, Temporal and Postgres. (A run through a runner is covered by
tests/workflows; here no runner listens, so a started run is only looked at, then ended.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from schema.payloads.schedules import SYSTEM_PAUSE_NOTE
from schema.temporal import install_schedule_id
from tests.api.conftest import ADMIN, bearer, insert_token, new_token, signed_bundle, trust_via_api
from tests.workflows.helpers import Signer, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(180)]

NIGHTLY = {"name": "nightly", "cron": "0 3 * * *", "endpoint": "GET /status"}
REPORT = {"name": "report", "cron": "30 4 * * 1", "endpoint": "POST /report", "body": {"kind": "weekly"}}
V1_API = {"endpoints": [{"method": "GET", "path": "/status"}, {"method": "POST", "path": "/report"}]}
V2_API = {"endpoints": [{"method": "GET", "path": "/status"}]}  # POST /report is gone


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["error"] == code, body
    return body


async def _publish_scheduled(api: httpx.AsyncClient, tmp: Path) -> str:
    """1.0.0 schedules GET /status (nightly) and POST /report (report); 2.0.0 drops POST /report."""
    signer = Signer("acme")
    await trust_via_api(api, signer)
    name = unique_name()
    for version, schedules, endpoints in (("1.0.0", [NIGHTLY, REPORT], V1_API), ("2.0.0", [NIGHTLY], V2_API)):
        b = signed_bundle(tmp, signer, name, version, schedules=schedules, api=endpoints)
        _ok(await api.post("/v1/bundles", content=b.data, headers=b.headers()))
    return name


@pytest.fixture
async def scheduled(
    api: httpx.AsyncClient, worker: None, tmp_path: Path, tenant: str, temporal_client: Client
) -> AsyncIterator[str]:
    """An extension with schedules, installed at 1.0.0 in `tenant`; its Schedules deleted afterwards."""
    name = await _publish_scheduled(api, tmp_path)
    _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": "1.0.0"}, headers=ADMIN
        )
    )
    yield name
    for sched in ("nightly", "report"):
        try:
            await temporal_client.get_schedule_handle(install_schedule_id(tenant, name, sched)).delete()
        except RPCError:
            pass


async def _listed(api: httpx.AsyncClient, tenant: str, **params: str) -> dict[str, dict[str, Any]]:
    rows = _ok(await api.get(f"/v1/tenants/{tenant}/schedules", params=params, headers=ADMIN))
    return {r["name"]: r for r in rows}


async def test_list_pause_resume_disable_enable(
    api: httpx.AsyncClient, scheduled: str, tenant: str, db_pool: asyncpg.Pool, temporal_client: Client
) -> None:
    name, base = scheduled, f"/v1/tenants/{tenant}/installs/{scheduled}/schedules"
    listed = await _listed(api, tenant)
    assert list(listed) == ["nightly", "report"]
    nightly, report = listed["nightly"], listed["report"]
    assert (nightly["extension"], nightly["cron"], nightly["endpoint"]) == (name, "0 3 * * *", "GET /status")
    assert (nightly["has_body"], report["has_body"]) == (False, True)
    assert nightly["schedule_id"] == install_schedule_id(tenant, name, "nightly")
    assert (nightly["state"], nightly["paused"], nightly["install_status"]) == ("active", False, "active")
    assert nightly["next_run_at"] is not None and "T03:00:00" in nightly["next_run_at"]
    assert nightly["last_run"] is None
    assert await _listed(api, tenant, extension="com.other.thing") == {}
    assert list(await _listed(api, tenant, extension=name)) == ["nightly", "report"]

    # The last run is the newest execution_log row of principal schedule:<name> (a scheduled run's).
    for request_id, status, outcome in (("sched-old", 200, "ok"), ("sched-new", 500, "handler_error")):
        await db_pool.execute(
            """INSERT INTO execution_log (request_id, tenant_id, extension_name, method, endpoint, status,
                                          outcome, duration_ms, principal)
               VALUES ($1, $2, $3, 'GET', '/status', $4, $5, 1.0, 'schedule:nightly')""",
            request_id,
            tenant,
            name,
            status,
            outcome,
        )
    last = (await _listed(api, tenant))["nightly"]["last_run"]
    assert (last["request_id"], last["status"], last["outcome"]) == ("sched-new", 500, "handler_error")
    assert (await _listed(api, tenant))["report"]["last_run"] is None

    paused = _ok(await api.post(f"{base}/nightly/pause", json={"note": "maintenance"}, headers=ADMIN))
    assert (paused["paused"], paused["changed"], paused["note"]) == (True, True, "maintenance")
    assert paused["workflow_id"].startswith(install_schedule_id(tenant, name, "nightly") + "/control/")
    row = (await _listed(api, tenant))["nightly"]
    assert (row["state"], row["paused"], row["note"], row["next_run_at"]) == (
        "paused",
        True,
        "maintenance",
        None,
    )
    again = _ok(await api.post(f"{base}/nightly/pause", json={"note": "maintenance"}, headers=ADMIN))
    assert (again["paused"], again["changed"]) == (True, False)

    # Disable pauses the rest (system note); the operator's pause keeps its note.
    _ok(await api.post(f"/v1/tenants/{tenant}/installs/{name}/disable", headers=ADMIN))
    listed = await _listed(api, tenant)
    assert (listed["report"]["state"], listed["report"]["note"]) == (
        "paused_install_inactive",
        SYSTEM_PAUSE_NOTE,
    )
    assert (listed["nightly"]["state"], listed["nightly"]["note"]) == ("paused", "maintenance")
    assert listed["report"]["install_status"] == "disabled"
    _error(await api.post(f"{base}/report/resume", headers=ADMIN), 409, "install_not_active")
    _error(await api.post(f"{base}/report/run", headers=ADMIN), 409, "install_not_active")

    # Enable resumes what disable paused, not the operator's pause.
    _ok(await api.post(f"/v1/tenants/{tenant}/installs/{name}/enable", headers=ADMIN))
    listed = await _listed(api, tenant)
    assert (listed["report"]["state"], listed["nightly"]["state"]) == ("active", "paused")
    resumed = _ok(await api.post(f"{base}/nightly/resume", headers=ADMIN))
    assert (resumed["paused"], resumed["changed"]) == (False, True)
    assert (await _listed(api, tenant))["nightly"]["state"] == "active"
    audit = _ok(await api.get("/v1/audit", params={"tenant": tenant, "action": "schedule_*"}, headers=ADMIN))
    assert sorted(e["action"] for e in audit) == ["schedule_pause", "schedule_pause_noop", "schedule_resume"]

    # One Idempotency-Key is one request: sent again to do the other thing, it is refused.
    key = {**ADMIN, "idempotency-key": f"k-{uuid.uuid4().hex[:8]}"}
    first = _ok(await api.post(f"{base}/report/pause", headers=key))
    assert first == _ok(await api.post(f"{base}/report/pause", headers=key))
    _error(await api.post(f"{base}/report/resume", headers=key), 422, "idempotency_key_reused")

    # A Schedule that is gone from Temporal (a sync that failed) is `missing`: pause and resume refuse
    # at once instead of starting a control workflow that cannot succeed; a change of the install syncs.
    await temporal_client.get_schedule_handle(install_schedule_id(tenant, name, "report")).delete()
    assert (await _listed(api, tenant))["report"]["state"] == "missing"
    for action in ("pause", "resume"):
        body = _error(await api.post(f"{base}/report/{action}", headers=ADMIN), 409, "conflict")
        assert body["details"]["state"] == "missing"
    _ok(await api.post(f"/v1/tenants/{tenant}/installs/{name}/disable", headers=ADMIN))
    _ok(await api.post(f"/v1/tenants/{tenant}/installs/{name}/enable", headers=ADMIN))
    assert (await _listed(api, tenant))["report"]["state"] == "active"

    for action in ("pause", "resume", "run"):
        body = _error(await api.post(f"{base}/nosuch/{action}", headers=ADMIN), 404, "not_found")
        assert "nosuch" in body["message"]
    _error(
        await api.post(
            f"/v1/tenants/{tenant}/installs/com.acme.absent/schedules/nightly/pause", headers=ADMIN
        ),
        404,
        "not_found",
    )


async def test_run_now_without_waiting_starts_the_run_workflow(
    api: httpx.AsyncClient, scheduled: str, tenant: str, temporal_client: Client
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{scheduled}/schedules"
    key = {**ADMIN, "idempotency-key": f"run-{uuid.uuid4().hex[:8]}"}
    started = _ok(await api.post(f"{base}/nightly/run", params={"wait": "false"}, headers=key), 202)
    wf_id = started["workflow_id"]
    assert wf_id == install_schedule_id(tenant, scheduled, "nightly") + f"/manual/{key['idempotency-key']}"
    assert started["existing"] is False and "/workflows/" in started["ui_url"]
    handle = temporal_client.get_workflow_handle(wf_id)
    try:
        desc = await handle.describe()
        assert desc.workflow_type == "ScheduledRun"
        attrs = {k.name: v for k, v in desc.typed_search_attributes}
        assert attrs["TenantId"] == tenant and attrs["Operation"] == "scheduled_run"
        # The same key again attaches to that run instead of calling the guest twice.
        retry = _ok(await api.post(f"{base}/nightly/run", params={"wait": "false"}, headers=key), 202)
        assert retry["workflow_id"] == wf_id
    finally:
        try:
            await handle.terminate("test finished (no runner listens here)")
        except RPCError:
            pass


async def test_upgrade_that_drops_a_scheduled_endpoint_needs_drop_schedules(
    api: httpx.AsyncClient, scheduled: str, tenant: str, temporal_client: Client
) -> None:
    url = f"/v1/tenants/{tenant}/installs/{scheduled}/upgrade"
    refused = _error(
        await api.post(url, json={"version": "2.0.0"}, headers=ADMIN), 409, "schedule_endpoint_dropped"
    )
    assert refused["details"]["schedules"] == ["report"] and "report" in refused["message"]
    _error(
        await api.post(url, json={"version": "2.0.0", "drop_schedules": ["nightly"]}, headers=ADMIN),
        409,
        "schedule_endpoint_dropped",
    )
    up = _ok(await api.post(url, json={"version": "2.0.0", "drop_schedules": ["report"]}, headers=ADMIN))
    assert up["version"] == "2.0.0"
    assert list(await _listed(api, tenant)) == ["nightly"]
    with pytest.raises(RPCError) as gone:
        await temporal_client.get_schedule_handle(install_schedule_id(tenant, scheduled, "report")).describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    # Rolling back brings it back (1.0.0 declares it again, and 2.0.0 dropped no endpoint of it).
    back = _ok(await api.post(f"/v1/tenants/{tenant}/installs/{scheduled}/rollback", json={}, headers=ADMIN))
    assert back["version"] == "1.0.0"
    assert (await _listed(api, tenant))["report"]["state"] == "active"


async def test_a_tenant_token_sees_and_changes_only_its_own_schedules(
    api: httpx.AsyncClient, scheduled: str, tenant: str, db_pool: asyncpg.Pool
) -> None:
    other = f"t-{uuid.uuid4().hex[:10]}"
    token = new_token()
    await insert_token(db_pool, token, scopes=["installs:manage"], tenant_id=other)
    mine = bearer(token)
    assert _ok(await api.get(f"/v1/tenants/{other}/schedules", headers=mine)) == []
    _error(await api.get(f"/v1/tenants/{tenant}/schedules", headers=mine), 403, "tenant_mismatch")
    base = f"/v1/tenants/{tenant}/installs/{scheduled}/schedules/nightly"
    for action in ("run", "pause", "resume"):
        _error(await api.post(f"{base}/{action}", headers=mine), 403, "tenant_mismatch")
    reader = new_token()
    await insert_token(db_pool, reader, scopes=["ext:read"], tenant_id=tenant)
    assert len(_ok(await api.get(f"/v1/tenants/{tenant}/schedules", headers=bearer(reader)))) == 2
    _error(await api.post(f"{base}/pause", headers=bearer(reader)), 403, "forbidden")
