"""Fault: the Temporal worker process of a full stack is SIGKILLed in the middle of a control-plane
operation started through the operator API, then started again. Each operation has exactly one outcome:
the API call that was waiting answers 200, the workflow result says what happened once, and the
registry holds one version row / one revision bump / one secrets version.

Where the kill lands:
* publish: the stack's first worker serves only the `control` queue, so the publish workflow stops,
  deterministically, with `precompile_component` scheduled on the `compile` queue; the worker is killed
  there and restarted with the stack's env serving both queues (the tests/workflows/test_crash_recovery
  pattern, here with the real stack processes and the API call in flight);
* install and secret rotation: the worker is killed as soon as the change's `apply_install_change`
  activity has completed (the registry write is done, audit + invalidation are not), and restarted
  with exactly the same env.
Slow (15-40 s each): recovery waits out Temporal's sticky-queue and activity timeouts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from schema.payloads.install import InstallChangeResult
from schema.payloads.publish import PublishResult
from schema.temporal import install_change_workflow_id, publish_workflow_id
from tests.faults.conftest import run_stack
from tests.faults.harness import FaultStack, clean_environ, eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.faults_slow,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

API_WAIT = 240.0


@pytest.fixture
def control_only_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_server_url: str
) -> Iterator[FaultStack]:
    """A stack whose worker serves only the control queue (apps inherit this process's environment)."""
    monkeypatch.setenv("EXT_WORKER_QUEUES", "control")
    yield from run_stack(tmp_path / "stack", clean_environ(database_server=database_server_url))


async def _events(handle: WorkflowHandle[Any, Any], kind: EventType.ValueType) -> Counter[str]:
    """How many events of `kind` (activity scheduled / completed) each activity type has."""
    names: dict[int, str] = {}
    counts: Counter[str] = Counter()
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        if e.event_type == kind:
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                counts[names[e.event_id]] += 1
            else:
                counts[names[e.activity_task_completed_event_attributes.scheduled_event_id]] += 1
    return counts


async def _db(fs: FaultStack) -> asyncpg.Connection:
    return await asyncpg.connect(fs.env["EXT_DATABASE_URL"])


async def test_worker_killed_during_publish(control_only_stack: FaultStack) -> None:
    fs = control_only_stack
    temporal = await fs.temporal()
    name = "com.faults.pub"
    _, digest, _ = fs.bundle(name)
    async with fs.api(timeout=API_WAIT) as api:
        await fs.trust(api)
        call = asyncio.create_task(fs.publish(api, name))
        handle = temporal.get_workflow_handle(publish_workflow_id(digest), result_type=PublishResult)

        async def compile_pending() -> bool:
            scheduled = await _events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
            return scheduled["precompile_component"] == 1

        await eventually(compile_pending, timeout=60, what="precompile_component scheduled")
        killed = fs.kill("worker")
        assert not call.done(), "the API call must still be waiting on the workflow"
        restarted = await asyncio.to_thread(
            fs.restart_app, "worker", {"EXT_WORKER_QUEUES": "control,compile"}
        )
        assert restarted != killed
        resp: httpx.Response = await asyncio.wait_for(call, API_WAIT)

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["content_hash"] == digest and body.get("already_published") in (False, None), body
    result = await handle.result()
    assert (result.name, result.version, result.already_published) == (name, "1.0.0", False)
    completed = await _events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert {"inspect_bundle", "precompile_component", "promote_bundle", "register_version"} <= set(completed)
    assert set(completed.values()) == {1}, completed
    conn = await _db(fs)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM versions v JOIN extensions e ON e.id = v.extension_id WHERE e.name = $1",
            name,
        )
        assert rows == 1
        published = await conn.fetchval("SELECT count(*) FROM audit_events WHERE action = 'published'")
        assert published == 1
    finally:
        await conn.close()


async def _kill_during_change(
    fs: FaultStack,
    method: str,
    path: str,
    body: dict[str, Any],
    tenant: str,
    ext: str,
    key: str,
    write: str,
) -> tuple[httpx.Response, InstallChangeResult, Counter[str]]:
    """Send one install change through the API, SIGKILL the worker once its registry write (activity
    `write`) is done, restart the worker with the same env; returns the API response, the change
    workflow's result and its completed activities."""
    temporal = await fs.temporal()
    child = temporal.get_workflow_handle(
        install_change_workflow_id(tenant, ext, key), result_type=InstallChangeResult
    )
    async with fs.api(timeout=API_WAIT) as api:
        call = asyncio.create_task(api.request(method, path, json=body, headers={"idempotency-key": key}))

        async def applied() -> bool:
            if call.done():
                raise AssertionError(f"the API answered before the kill: {call.result().text}")
            done = await _events(child, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
            return done[write] == 1

        await eventually(applied, timeout=60, what=f"{write} completed")
        fs.kill("worker")
        await asyncio.to_thread(fs.restart_app, "worker")
        resp: httpx.Response = await asyncio.wait_for(call, API_WAIT)
    result = await child.result()
    completed = await _events(child, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    return resp, result, completed


async def test_worker_killed_during_install(fault_stack: FaultStack) -> None:
    fs = fault_stack
    tenant, ext = "t-install", "com.faults.inst"
    async with fs.api() as api:
        await fs.trust(api)
        assert (await fs.publish(api, ext)).status_code == 200
    resp, result, completed = await _kill_during_change(
        fs,
        "POST",
        f"/v1/tenants/{tenant}/installs",
        {"extension": ext, "version": "1.0.0"},
        tenant,
        ext,
        "k-1",
        "apply_install_change",
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["revision"], resp.json()["changed"]) == (1, True)
    assert (result.revision, result.version, result.changed) == (1, "1.0.0", True)
    assert completed == Counter({"apply_install_change": 1, "record_audit": 1, "publish_invalidation": 1})
    conn = await _db(fs)
    try:
        assert await conn.fetchval("SELECT count(*) FROM installs WHERE tenant_id = $1", tenant) == 1
        assert await conn.fetchval("SELECT revision FROM installs WHERE tenant_id = $1", tenant) == 1
        assert await conn.fetchval("SELECT count(*) FROM install_history") == 1
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE action = 'install'") == 1
    finally:
        await conn.close()
    async with fs.gateway(tenant) as gw:
        assert (await gw.get(f"/api/ext/{ext}/hello")).status_code == 200


async def test_worker_killed_during_secret_rotation(fault_stack: FaultStack) -> None:
    fs = fault_stack
    tenant, ext = await fs.ready_extension("t-secrets", "com.faults.sec")
    conn = await _db(fs)
    try:
        before = await conn.fetchrow(
            "SELECT id, revision, secrets_version FROM installs WHERE tenant_id = $1", tenant
        )
    finally:
        await conn.close()
    assert before is not None and before["secrets_version"] == 0
    resp, result, completed = await _kill_during_change(
        fs,
        "PUT",
        f"/v1/tenants/{tenant}/installs/{ext}/secrets",
        {"secrets": {"API_KEY": "s3cret-value"}},
        tenant,
        ext,
        "rotate-1",
        "set_secrets",
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["secrets_version"] == 1 and resp.json()["secret_keys"] == ["API_KEY"]
    assert "s3cret-value" not in resp.text
    assert (result.secrets_version, result.revision, result.changed) == (1, before["revision"] + 1, True)
    assert completed["set_secrets"] == 1 and set(completed.values()) == {1}, completed
    conn = await _db(fs)
    try:
        after = await conn.fetchrow(
            "SELECT revision, secrets_version FROM installs WHERE id = $1", before["id"]
        )
        assert after is not None
        assert (after["revision"], after["secrets_version"]) == (before["revision"] + 1, 1)
        versions = await conn.fetch("SELECT version FROM install_secrets WHERE install_id = $1", before["id"])
        assert [r["version"] for r in versions] == [1]
    finally:
        await conn.close()
