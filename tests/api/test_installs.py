"""Install lifecycle through the operator API: each change an update of the install entity workflow,
run by the real worker against Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from core.codec import unseal_secrets
from schema.payloads.install import InstallRequest
from schema.payloads.secrets import SealedSecrets
from schema.temporal import install_workflow_id
from tests.api.conftest import ADMIN, bearer, insert_token, new_token
from tests.workflows.helpers import fixed_keyring, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex


async def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_install_lifecycle(api: httpx.AsyncClient, published: str, tenant: str) -> None:
    name, base = published, f"/v1/tenants/{tenant}/installs/{published}"
    body = {
        "extension": name,
        "version": "1.0.0",
        "config": {"greeting": "hi"},
        "secrets": {"api_key": SECRET_VALUE},
    }
    resp = await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN)
    out = await _ok(resp)
    assert SECRET_VALUE not in resp.text
    assert (out["version"], out["status"], out["changed"]) == ("1.0.0", "active", True)
    assert out["secret_keys"] == ["api_key"] and out["secrets_version"] == 1 and out["config_version"] == 1
    assert out["ui_url"].startswith("http") and "/workflows/" in out["ui_url"]

    again = await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": "1.0.0"}, headers=ADMIN
        )
    )
    assert again["changed"] is False

    status = await _ok(await api.get(base, headers=ADMIN))
    assert (status["version"], status["config"], status["secrets_version"]) == (
        "1.0.0",
        {"greeting": "hi"},
        1,
    )
    assert status["workflow_id"] == install_workflow_id(tenant, name)
    assert SECRET_VALUE not in str(status)

    up = await _ok(await api.post(f"{base}/upgrade", json={"version": "1.1.0"}, headers=ADMIN))
    assert (up["previous_version"], up["version"]) == ("1.0.0", "1.1.0")
    back = await _ok(await api.post(f"{base}/rollback", json={}, headers=ADMIN))
    assert back["version"] == "1.0.0"
    assert (await _ok(await api.post(f"{base}/disable", headers=ADMIN)))["status"] == "disabled"
    assert (await _ok(await api.post(f"{base}/enable", headers=ADMIN)))["status"] == "active"

    await _ok(await api.put(f"{base}/limits", json={"rps": 5, "burst": 10}, headers=ADMIN))
    cfg = await _ok(await api.put(f"{base}/config", json={"config": {"greeting": "hello"}}, headers=ADMIN))
    assert cfg["config_version"] == 2
    sec_resp = await api.put(
        f"{base}/secrets", json={"secrets": {"api_key": SECRET_VALUE + "2"}}, headers=ADMIN
    )
    sec = await _ok(sec_resp)
    assert (
        sec["secrets_version"] == 2
        and sec["secret_keys"] == ["api_key"]
        and SECRET_VALUE not in sec_resp.text
    )

    status = await _ok(await api.get(base, headers=ADMIN))
    assert (status["rate_limit_rps"], status["rate_limit_burst"]) == (5.0, 10)
    assert status["config"] == {"greeting": "hello"}
    ops = [h["operation"] for h in status["history"]]
    moves = [op for op in ops if op in ("install", "upgrade", "rollback", "disable", "enable")]
    assert moves == ["install", "upgrade", "rollback", "disable", "enable"], ops

    listed = await _ok_list(await api.get(f"/v1/installs?tenant={tenant}", headers=ADMIN))
    assert [(i["extension"], i["version"]) for i in listed] == [(name, "1.0.0")]

    audit = await _ok_list(await api.get(f"/v1/audit?tenant={tenant}&extension={name}", headers=ADMIN))
    actions = {e["action"] for e in audit}
    assert len(audit) >= 8 and all(e["actor"] == "bootstrap" for e in audit)
    assert all(e["ui_url"].endswith(e["workflow_id"].replace("/", "%2F")) for e in audit)
    assert SECRET_VALUE not in str(audit), actions

    gone = await _ok(await api.delete(base, headers=ADMIN))
    assert gone["status"] == "uninstalled"
    missing = await api.get(base, headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def _ok_list(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    body: list[dict[str, Any]] = resp.json()
    return body


async def test_set_debug_flag(
    api: httpx.AsyncClient, published: str, tenant: str, db_pool: asyncpg.Pool
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{published}"
    body = {"extension": published, "version": "1.0.0"}
    await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN))
    assert (await _ok(await api.get(base, headers=ADMIN)))["debug_enabled"] is False

    # The scopes of /limits: installs:manage, on the token's own tenant.
    reader, other, manager = new_token(), new_token(), new_token()
    await insert_token(db_pool, reader, scopes=["ext:read", "ext:debug"], tenant_id=tenant)
    await insert_token(db_pool, other, scopes=["installs:manage"], tenant_id=tenant + "-other")
    manager_id = await insert_token(db_pool, manager, scopes=["installs:manage"], tenant_id=tenant)
    resp = await api.put(f"{base}/debug", json={"enabled": True}, headers=bearer(reader))
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden"), resp.text
    resp = await api.put(f"{base}/debug", json={"enabled": True}, headers=bearer(other))
    assert (resp.status_code, resp.json()["error"]) == (403, "tenant_mismatch"), resp.text
    resp = await api.put(f"{base}/debug", json={"enabled": True})
    assert resp.status_code == 401, resp.text

    # Only a JSON boolean: no coercion of "true", 1 or null (validation errors are 400 in this API).
    for bad in ({"enabled": "true"}, {"enabled": 1}, {"enabled": 0}, {"enabled": None}, {}):
        resp = await api.put(f"{base}/debug", json=bad, headers=ADMIN)
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), (bad, resp.text)
        assert "enabled" in resp.json()["message"]

    missing = await api.put(
        f"/v1/tenants/{tenant}/installs/{unique_name()}/debug", json={"enabled": True}, headers=ADMIN
    )
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found"), missing.text
    resp = await api.put(
        f"/v1/tenants/{tenant}-none/installs/{published}/debug", json={"enabled": True}, headers=ADMIN
    )
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found"), resp.text

    on = await _ok(await api.put(f"{base}/debug", json={"enabled": True}, headers=bearer(manager)))
    assert (on["operation"], on["changed"], on["revision"], on["status"]) == ("set_debug", True, 2, "active")
    assert on["workflow_id"].startswith(f"install/{tenant}/{published}/change/") and on["ui_url"]
    status = await _ok(await api.get(base, headers=ADMIN))
    assert (status["debug_enabled"], status["revision"]) == (True, 2)
    assert [h["operation"] for h in status["history"]] == ["install", "set_debug"]
    listed = await _ok_list(await api.get(f"/v1/installs?tenant={tenant}", headers=ADMIN))
    assert [i["debug_enabled"] for i in listed] == [True]

    again = await _ok(await api.put(f"{base}/debug", json={"enabled": True}, headers=ADMIN))
    assert (again["changed"], again["revision"]) == (False, 2)
    off = await _ok(await api.put(f"{base}/debug", json={"enabled": False}, headers=ADMIN))
    assert (off["changed"], off["revision"]) == (True, 3)
    assert (await _ok(await api.get(base, headers=ADMIN)))["debug_enabled"] is False

    audit = await _ok_list(await api.get(f"/v1/audit?tenant={tenant}&extension={published}", headers=ADMIN))
    debug_rows = [
        (e["action"], e["actor"], e["after"]["debug_enabled"])
        for e in sorted(audit, key=lambda e: e["id"])
        if e["action"].startswith("set_debug")
    ]
    assert debug_rows == [
        ("set_debug", f"token:{manager_id}", True),
        ("set_debug_noop", "bootstrap", True),
        ("set_debug", "bootstrap", False),
    ]


async def test_idempotency_key_returns_the_first_result(
    api: httpx.AsyncClient, published: str, tenant: str
) -> None:
    h = {**ADMIN, "idempotency-key": "req-" + uuid.uuid4().hex}
    body = {"extension": published, "version": "1.0.0"}
    first = await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=h))
    base = f"/v1/tenants/{tenant}/installs/{published}"
    await _ok(await api.post(f"{base}/upgrade", json={"version": "1.1.0"}, headers=ADMIN))
    replay = await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=h))
    assert replay == first  # not a downgrade: the same request id answers with its first result


async def test_install_failures_map_to_codes(api: httpx.AsyncClient, published: str, tenant: str) -> None:
    resp = await api.post(
        f"/v1/tenants/{tenant}/installs", json={"extension": published, "version": "9.9.9"}, headers=ADMIN
    )
    assert resp.status_code == 404 and resp.json()["error"] == "not_found", resp.text
    resp = await api.post(
        f"/v1/tenants/{tenant}/installs", json={"extension": unique_name(), "version": "1.0.0"}, headers=ADMIN
    )
    assert resp.status_code == 404 and resp.json()["error"] == "not_found", resp.text
    resp = await api.post(f"/v1/tenants/{tenant}/installs", json={"extension": published}, headers=ADMIN)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
    resp = await api.put(
        f"/v1/tenants/{tenant}/installs/{published}/secrets", json={"secrets": {}}, headers=ADMIN
    )
    assert resp.status_code == 400, resp.text


async def test_no_worker_means_503_not_a_hang(
    settings: OperatorSettings, published: str, tenant: str
) -> None:
    """Nothing polls this app's queue: the API gives up after its wait with the operation to follow.
    (The version is published by the worker of the test's own queue, so the change passes the API's
    registry checks and really reaches Temporal.)"""
    idle_queue = f"{settings.control_task_queue}-nobody"
    app = create_app(settings.model_copy(update={"wait_seconds": 1.0, "control_task_queue": idle_queue}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api:
        resp = await api.post(
            f"/v1/tenants/{tenant}/installs",
            json={"extension": published, "version": "1.0.0"},
            headers=ADMIN,
        )
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["error"] == "control_plane_unavailable"
        assert body["details"]["workflow_id"] == install_workflow_id(tenant, published)
        op = await api.get(f"/v1/operations/install/{tenant}/{published}", headers=ADMIN)
        assert op.status_code == 200 and op.json()["status"] == "running", op.text
    await app.state.resources.aclose()


async def test_secrets_enter_temporal_sealed(
    api: httpx.AsyncClient, published: str, tenant: str, temporal_client: Client
) -> None:
    """Even decoded with the payload codec, the install update in history holds only sealed secrets."""
    body = {"extension": published, "version": "1.0.0", "secrets": {"api_key": SECRET_VALUE}}
    await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN))
    history = await temporal_client.get_workflow_handle(
        install_workflow_id(tenant, published)
    ).fetch_history()
    requests = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            args = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            requests += await temporal_client.data_converter.decode(args.payloads, [InstallRequest])
    (request,) = requests
    assert isinstance(request, InstallRequest) and isinstance(request.secrets, SealedSecrets)
    assert request.secrets.key_names == ["api_key"]
    assert SECRET_VALUE not in repr(request)
    assert unseal_secrets(fixed_keyring(1), request.secrets) == {"api_key": SECRET_VALUE}


async def test_values_postgres_cannot_store_are_refused_before_any_workflow(
    api: httpx.AsyncClient, published: str, tenant: str
) -> None:
    """NUL, lone surrogates (both reachable through JSON escapes) and NaN used to be accepted, then failed
    the registry write on every retry while the caller waited on a wedged install."""
    base = f"/v1/tenants/{tenant}/installs/{published}"
    await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": published, "version": "1.0.0"}, headers=ADMIN
        )
    )
    json_headers = {**ADMIN, "content-type": "application/json"}
    cases = [
        (b'{"config": {"greeting": "a\\u0000b"}}', "$.greeting", "NUL"),
        (b'{"config": {"list": [1, "\\ud800"]}}', "$.list[1]", "lone surrogate"),
        (b'{"config": {"n": NaN}}', "$.n", "finite"),
        (b'{"config": {"k\\u0000": "v"}}', "$", "a key contains a NUL"),
    ]
    for raw, path, fragment in cases:
        resp = await api.put(f"{base}/config", content=raw, headers=json_headers)
        assert resp.status_code == 400, resp.text
        body = resp.json()
        assert body["error"] == "invalid_config" and fragment in body["message"], body
        assert body["details"]["issues"][0]["path"] == path
    first = b'{"extension": "%s", "version": "1.0.0", "config": {"g": "\\u0000"}}' % published.encode()
    resp = await api.post(f"/v1/tenants/{tenant}-2/installs", content=first, headers=json_headers)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_config")
    resp = await api.put(f"{base}/secrets", content=b'{"secrets": {"a\\u0000": "x"}}', headers=json_headers)
    assert resp.status_code == 400 and "secret name contains a NUL" in resp.json()["message"], resp.text
    # Nothing was changed or left running: the install is still at its first config and answers changes.
    status = await _ok(await api.get(base, headers=ADMIN))
    assert (status["config_version"], status["config"]) == (0, {})
    cfg = await _ok(await api.put(f"{base}/config", json={"config": {"greeting": "ok"}}, headers=ADMIN))
    assert cfg["config_version"] == 1
