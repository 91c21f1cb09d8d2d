"""`POST /v1/master-key/rotate`: global admins only; the real RotateMasterKey workflow re-wraps data keys.

Data keys are first wrapped by a worker whose keyring holds only version 1; the rotation then runs on a
worker whose keyring also holds version 2 (as after step 2 of the runbook). Both workers share the
test's version-1 Temporal client: the payload codec is not what is being rotated here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.operator.settings import OperatorSettings
from core.crypto import open_envelope
from registry import read
from schema.temporal import manual_rotation_workflow_id
from tests.api.conftest import (
    ADMIN,
    bearer,
    control_workers,
    insert_token,
    new_token,
    signed_bundle,
    trust_via_api,
)
from tests.workflows.helpers import Signer, eventually, fixed_keyring, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

ROTATED = fixed_keyring(1, 2)


async def install_with_secrets(api: httpx.AsyncClient, tmp: Path, tenants: list[str]) -> str:
    """Publish one extension and install it, with a secret, in each tenant; returns its name."""
    signer = Signer("acme")
    await trust_via_api(api, signer)
    name = unique_name()
    bundle = signed_bundle(tmp, signer, name)
    resp = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
    assert resp.status_code == 200, resp.text
    for tenant in tenants:
        body = {"extension": name, "version": "1.0.0", "secrets": {"K": f"{tenant}-secret"}}
        resp = await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN)
        assert resp.status_code == 200, resp.text
    return name


async def data_key_versions(pool: asyncpg.Pool) -> set[int]:
    return {r["v"] for r in await pool.fetch("SELECT master_key_version AS v FROM install_data_keys")}


async def end_workflows(client: Client, *workflow_ids: str) -> None:
    for wf_id in workflow_ids:
        try:
            await client.get_workflow_handle(wf_id).terminate("test finished")
        except RPCError:
            pass  # already closed


@pytest.fixture
async def tenants(temporal_client: Client) -> AsyncIterator[list[str]]:
    ts = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield ts
    # The install entity workflows are long-lived: end them with the test.
    for t in ts:
        async for wf in temporal_client.list_workflows(f"WorkflowId STARTS_WITH 'install/{t}/'"):
            await end_workflows(temporal_client, wf.id)


@pytest.fixture
async def rotation_id(settings: OperatorSettings, temporal_client: Client) -> AsyncIterator[str]:
    wf_id = manual_rotation_workflow_id(settings.control_task_queue)
    yield wf_id
    await end_workflows(temporal_client, wf_id)  # only a failed test leaves one running


def test_the_deployment_queue_gets_the_plain_manual_id() -> None:
    assert manual_rotation_workflow_id("extplane-control") == "rotate-master-key/manual"
    # Schedule runs are rotate-master-key/scheduled-<time>: a manual run never takes one of theirs.
    assert manual_rotation_workflow_id("q1") == "rotate-master-key/manual/q1"


async def test_tenant_tokens_and_non_admin_tokens_are_refused(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, temporal_client: Client, rotation_id: str
) -> None:
    tenant_admin, trust_manager = new_token(), new_token()
    await insert_token(db_pool, tenant_admin, scopes=["admin"], tenant_id="acme")
    await insert_token(db_pool, trust_manager, scopes=["trust:manage", "installs:manage"])
    for token in (tenant_admin, trust_manager):
        resp = await api.post("/v1/master-key/rotate", headers=bearer(token))
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "forbidden"
    assert "global token" in (await api.post("/v1/master-key/rotate", headers=bearer(tenant_admin))).text
    assert (await api.post("/v1/master-key/rotate")).status_code == 401
    with pytest.raises(RPCError):
        await temporal_client.get_workflow_handle(rotation_id).describe()


# Publishing precompiles a component, then two installs and two rotations: slow on a loaded 2-core box.
@pytest.mark.timeout(150)
async def test_rotation_rewraps_existing_data_keys_and_is_audited(
    api: httpx.AsyncClient,
    temporal_client: Client,
    settings: OperatorSettings,
    db_pool: asyncpg.Pool,
    data_dir: Path,
    redis_url: str,
    tmp_path: Path,
    tenants: list[str],
    rotation_id: str,
) -> None:
    common: dict[str, Any] = {"pool": db_pool, "data_dir": data_dir, "redis_url": redis_url}
    queue = settings.control_task_queue
    async with control_workers(temporal_client, queue, keyring=fixed_keyring(1), **common):
        name = await install_with_secrets(api, tmp_path, tenants)
    assert await data_key_versions(db_pool) == {1}

    async with control_workers(temporal_client, queue, keyring=ROTATED, **common):
        resp = await api.post("/v1/master-key/rotate", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "target_version": 2,
            "rewrapped": 2,
            "workflow_id": rotation_id,
            "ui_url": f"{settings.temporal_ui_url.rstrip('/')}/namespaces/default/workflows/"
            + rotation_id.replace("/", "%2F"),
        }
        # The first run is over, so the id is free again: a new run finds nothing left to re-wrap.
        again = await api.post("/v1/master-key/rotate", headers=ADMIN)
        assert again.status_code == 200, again.text
        assert (again.json()["target_version"], again.json()["rewrapped"]) == (2, 0)

    assert await data_key_versions(db_pool) == {2}
    for tenant in tenants:
        install = await read.resolve_install(db_pool, tenant, name)
        assert install is not None
        envelope = await read.secret_envelope(db_pool, install.install_id)
        assert envelope is not None and envelope.master_key_version == 2
        assert open_envelope(ROTATED, envelope) == {"K": f"{tenant}-secret"}

    audit = (await api.get("/v1/audit", headers=ADMIN)).json()
    rotations = [e for e in audit if e["action"] == "master_key_rotated"]
    assert [(e["actor"], e["after"], e["workflow_id"]) for e in rotations] == [
        ("bootstrap", {"target_version": 2, "rewrapped": 0}, rotation_id),
        ("bootstrap", {"target_version": 2, "rewrapped": 2}, rotation_id),
    ]


async def test_no_wait_is_202_and_a_second_trigger_joins_the_running_rotation(
    api: httpx.AsyncClient,
    temporal_client: Client,
    settings: OperatorSettings,
    db_pool: asyncpg.Pool,
    data_dir: Path,
    redis_url: str,
    rotation_id: str,
) -> None:
    # No worker yet: the rotation stays running, so the second trigger meets it.
    first = await api.post("/v1/master-key/rotate", params={"wait": "false"}, headers=ADMIN)
    assert first.status_code == 202, first.text
    assert first.json()["operation_id"] == rotation_id and first.json()["status"] == "running"
    assert first.json()["ui_url"].endswith(rotation_id.replace("/", "%2F"))
    run_id = (await temporal_client.get_workflow_handle(rotation_id).describe()).run_id
    second = await api.post("/v1/master-key/rotate?wait=false", headers=ADMIN)
    assert second.status_code == 202 and second.json()["operation_id"] == rotation_id, second.text
    desc = await temporal_client.get_workflow_handle(rotation_id).describe()
    assert (desc.run_id, desc.status) == (run_id, WorkflowExecutionStatus.RUNNING)

    async def completed() -> dict[str, Any] | None:
        resp = await api.get(f"/v1/operations/{rotation_id}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        op: dict[str, Any] = resp.json()
        return op if op["status"] != "running" else None

    common: dict[str, Any] = {"pool": db_pool, "data_dir": data_dir, "redis_url": redis_url}
    async with control_workers(temporal_client, settings.control_task_queue, keyring=ROTATED, **common):
        op = await eventually(completed, timeout=45, what="the rotation to complete")
    assert (op["status"], op["run_id"], op["workflow_type"]) == ("completed", run_id, "RotateMasterKey")
    assert op["result"] == {"target_version": 2, "rewrapped": 0}
