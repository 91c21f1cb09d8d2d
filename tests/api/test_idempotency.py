"""An Idempotency-Key is bound to the request it first named: the same key with another operation or
body is 422 idempotency_key_reused naming what differs (never the values), and changes nothing. It used
to return the first result and silently do nothing.

The binding (a fingerprint, api/operator/fingerprint.py) is kept by the install entity workflow, so a
second API process sees it, concurrent requests are ordered, and it survives continue-as-new."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from schema.payloads.install import InstallInput, InstallRequest
from schema.temporal import WorkflowType, install_workflow_id
from tests.api.conftest import ADMIN
from tests.support.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

SECRET = "s3cr3t-" + uuid.uuid4().hex
OTHER_SECRET = "s3cr3t-" + uuid.uuid4().hex


def keyed() -> dict[str, str]:
    return {**ADMIN, "idempotency-key": "k-" + uuid.uuid4().hex}


async def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _reused(resp: httpx.Response, *differs: str) -> str:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "idempotency_key_reused", body
    message: str = body["message"]
    for part in differs:
        assert part in message, (part, message)
    return message


@pytest.fixture
async def installed(api: httpx.AsyncClient, published: str, tenant: str) -> str:
    """The install's base URL, at 1.0.0 with an empty config."""
    body = {"extension": published, "version": "1.0.0"}
    await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN))
    return f"/v1/tenants/{tenant}/installs/{published}"


async def test_a_key_reused_for_another_operation_changes_nothing(
    api: httpx.AsyncClient, installed: str
) -> None:
    h = keyed()
    first = await _ok(await api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h))
    message = _reused(await api.post(f"{installed}/disable", headers=h), "operation")
    assert "config" not in message  # disable has no config: only the operation is named as different
    status = await _ok(await api.get(installed, headers=ADMIN))
    assert (status["status"], status["config"], status["revision"]) == ("active", {"greeting": "a"}, 2)
    # The same request again is still answered with its first result.
    again = await api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h)
    assert await _ok(again) == first


async def test_a_key_reused_with_another_body_names_the_part_that_differs(
    api: httpx.AsyncClient, installed: str
) -> None:
    h = keyed()
    await _ok(await api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h))
    message = _reused(
        await api.put(f"{installed}/config", json={"config": {"greeting": "b"}}, headers=h), "config"
    )
    assert "operation" not in message and "greeting" not in message and '"b"' not in message
    limits = keyed()
    await _ok(await api.put(f"{installed}/limits", json={"rps": 5}, headers=limits))
    _reused(
        await api.put(f"{installed}/limits", json={"rps": 5, "burst": 10}, headers=limits), "rate_limit_burst"
    )
    version = keyed()
    await _ok(await api.post(f"{installed}/upgrade", json={"version": "1.1.0"}, headers=version))
    _reused(await api.post(f"{installed}/rollback", json={"version": "1.0.0"}, headers=version), "operation")
    status = await _ok(await api.get(installed, headers=ADMIN))
    assert (status["version"], status["config"], status["rate_limit_burst"]) == (
        "1.1.0",
        {"greeting": "a"},
        None,
    )


async def test_secrets_are_compared_without_being_kept(
    api: httpx.AsyncClient, installed: str, temporal_client: Client, tenant: str, published: str
) -> None:
    """Sealing is randomized, so the same secrets seal differently every time: the fingerprint is an HMAC
    of the plain values under a key from the master keyring, and neither they nor a plain hash of them
    is in the workflow history."""
    h = keyed()
    first = await _ok(await api.put(f"{installed}/secrets", json={"secrets": {"api_key": SECRET}}, headers=h))
    again = await api.put(f"{installed}/secrets", json={"secrets": {"api_key": SECRET}}, headers=h)
    assert await _ok(again) == first
    for other in ({"api_key": OTHER_SECRET}, {"token": SECRET}):
        resp = await api.put(f"{installed}/secrets", json={"secrets": other}, headers=h)
        message = _reused(resp, "secrets")
        assert SECRET not in resp.text and OTHER_SECRET not in resp.text and "api_key" not in message
    status = await _ok(await api.get(installed, headers=ADMIN))
    assert status["secrets_version"] == 1

    history = await temporal_client.get_workflow_handle(
        install_workflow_id(tenant, published)
    ).fetch_history()
    requests: list[Any] = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            args = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            requests += await temporal_client.data_converter.decode(args.payloads, [InstallRequest])
    sent = [r for r in requests if isinstance(r, InstallRequest) and r.secrets is not None]
    assert len(sent) >= 1 and all("secrets" in r.fingerprint for r in sent)
    plain_digests = [
        hashlib.sha256(v.encode()).hexdigest()[:16] for v in (SECRET, '{"api_key":"' + SECRET + '"}')
    ]
    for r in sent:
        text = repr(r)
        assert SECRET not in text and not any(d in text for d in plain_digests), text


async def test_a_second_api_process_sees_the_first_binding(
    api: httpx.AsyncClient, installed: str, settings: OperatorSettings
) -> None:
    h = keyed()
    await _ok(await api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h))
    other = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url="http://api2") as api2:
            resp = await api2.put(f"{installed}/config", json={"config": {"greeting": "b"}}, headers=h)
            _reused(resp, "config")
    finally:
        await other.state.resources.aclose()


async def test_concurrent_requests_with_one_key_run_one_of_them(
    api: httpx.AsyncClient, installed: str
) -> None:
    h = keyed()
    a, b = await asyncio.gather(
        api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h),
        api.put(f"{installed}/config", json={"config": {"greeting": "b"}}, headers=h),
    )
    assert sorted([a.status_code, b.status_code]) == [200, 422], (a.text, b.text)
    winner = (a if a.status_code == 200 else b).json()
    status = await _ok(await api.get(installed, headers=ADMIN))
    assert status["config_version"] == winner["config_version"] == 1
    assert status["config"] == {"greeting": "a" if a.status_code == 200 else "b"}


async def test_a_refused_change_leaves_its_key_free(api: httpx.AsyncClient, installed: str) -> None:
    """A change the workflow refused is not remembered (a retry runs again), so its key binds nothing."""
    h = keyed()
    resp = await api.post(f"{installed}/rollback", json={}, headers=h)  # 1.0.0 is all it has run
    assert (resp.status_code, resp.json()["error"]) == (409, "conflict"), resp.text
    await _ok(await api.post(f"{installed}/upgrade", json={"version": "1.1.0"}, headers=h))


@pytest.fixture
async def short_runs(
    temporal_client: Client, task_queue: str, tenant: str, published: str
) -> AsyncIterator[str]:
    """The install entity started ahead of the API with continue-as-new after every 2 changes (the API's
    update-with-start attaches to it)."""
    workflow_id = install_workflow_id(tenant, published)
    await temporal_client.start_workflow(
        WorkflowType.INSTALL.value,
        InstallInput(tenant_id=tenant, extension=published, max_changes_per_run=2),
        id=workflow_id,
        task_queue=task_queue,
    )
    yield workflow_id


async def test_the_binding_survives_continue_as_new(
    api: httpx.AsyncClient, short_runs: str, installed: str, temporal_client: Client
) -> None:
    handle = temporal_client.get_workflow_handle(short_runs)
    first_run = (await handle.describe()).run_id
    h = keyed()
    await _ok(await api.put(f"{installed}/config", json={"config": {"greeting": "a"}}, headers=h))

    async def continued() -> bool:
        return (await handle.describe()).run_id != first_run

    await eventually(continued, deadline_s=30)
    _reused(await api.put(f"{installed}/config", json={"config": {"greeting": "b"}}, headers=h), "config")
