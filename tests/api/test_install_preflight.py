"""An install change that cannot apply is refused before it reaches Temporal: update-with-start would
otherwise start the install entity workflow, and a refused change left it running for a day (a fuzz run
left 30 behind). Each case below checks by workflow id that no entity was started."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from schema.temporal import install_workflow_id
from tests.api.conftest import ADMIN, assert_no_workflow, publish, trust_via_api
from tests.workflows.helpers import Signer, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

MALFORMED_NAMES = [
    "Com.Acme.X",
    "nodots",
    "com..acme",
    "com.acme.x-",
    "com acme.x",
    "com.acme.x\u00e9",
    "a." * 150,
    "com." + "a" * 200,
]


def _changes(name: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route that changes an existing install, for `name`."""
    base = f"installs/{name}"
    return [
        ("POST", f"{base}/upgrade", {"version": "1.1.0"}),
        ("POST", f"{base}/rollback", {}),
        ("POST", f"{base}/enable", None),
        ("POST", f"{base}/disable", None),
        ("DELETE", base, None),
        ("PUT", f"{base}/config", {"config": {"greeting": "hi"}}),
        ("PUT", f"{base}/secrets", {"secrets": {"api_key": "x"}}),
        ("PUT", f"{base}/limits", {"rps": 5}),
        ("PUT", f"{base}/debug", {"enabled": True}),
    ]


async def _refused(
    api: httpx.AsyncClient, client: Client, tenant: str, name: str, method: str, path: str, body: Any
) -> dict[str, Any]:
    resp = await api.request(method, f"/v1/tenants/{tenant}/{path}", json=body, headers=ADMIN)
    assert resp.status_code in (400, 404, 409), (method, path, resp.text)
    await assert_no_workflow(client, install_workflow_id(tenant, name))
    out: dict[str, Any] = resp.json()
    return out


async def test_installing_a_malformed_or_unpublished_name_starts_nothing(
    api: httpx.AsyncClient, published: str, tenant: str, temporal_client: Client
) -> None:
    for name in MALFORMED_NAMES:
        body = {"extension": name, "version": "1.0.0"}
        out = await _refused(api, temporal_client, tenant, name, "POST", "installs", body)
        # The body's own length limit or the name rule: either names the field, neither echoes it.
        assert out["error"] == "invalid_request" and out["message"].startswith("extension"), (name, out)
        assert name not in out["message"]
    unpublished = unique_name()
    body = {"extension": unpublished, "version": "1.0.0"}
    out = await _refused(api, temporal_client, tenant, unpublished, "POST", "installs", body)
    assert out["error"] == "not_found" and unpublished in out["message"], out
    for version, code in [("9.9.9", "not_found"), ("1.0", "invalid_request"), ("v1.0.0", "invalid_request")]:
        body = {"extension": published, "version": version}
        out = await _refused(api, temporal_client, tenant, published, "POST", "installs", body)
        assert out["error"] == code, (version, out)


async def test_changing_what_is_not_installed_starts_nothing(
    api: httpx.AsyncClient, published: str, tenant: str, temporal_client: Client
) -> None:
    # Published but never installed in this tenant, published nowhere, and malformed.
    for name, code in [
        (published, "not_found"),
        (unique_name(), "not_found"),
        ("Not.A.Name", "invalid_request"),
    ]:
        for method, path, body in _changes(name):
            out = await _refused(api, temporal_client, tenant, name, method, path, body)
            assert out["error"] == code, (name, method, path, out)
            if code == "not_found":
                assert f"{name} is not installed in tenant" in out["message"], out
    # With an Idempotency-Key the API first asks the entity whether it remembers the key: there is none.
    keyed = {**ADMIN, "idempotency-key": "k-" + uuid.uuid4().hex}
    resp = await api.put(
        f"/v1/tenants/{tenant}/installs/{published}/config", json={"config": {}}, headers=keyed
    )
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found"), resp.text
    await assert_no_workflow(temporal_client, install_workflow_id(tenant, published))


async def test_an_upgrade_to_a_version_that_does_not_exist_is_refused_up_front(
    api: httpx.AsyncClient, published: str, tenant: str, temporal_client: Client
) -> None:
    base = f"/v1/tenants/{tenant}/installs"
    resp = await api.post(base, json={"extension": published, "version": "1.0.0"}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    for path, body, code in [
        ("upgrade", {"version": "9.9.9"}, "not_found"),
        ("upgrade", {"version": "latest"}, "invalid_request"),
        ("rollback", {"version": "0.0.1"}, "not_found"),
    ]:
        resp = await api.post(f"{base}/{published}/{path}", json=body, headers=ADMIN)
        assert (resp.status_code, resp.json()["error"]) == (404 if code == "not_found" else 400, code), (
            resp.text
        )
    status = await api.get(f"{base}/{published}", headers=ADMIN)
    assert (status.json()["version"], status.json()["revision"]) == ("1.0.0", 1)


async def test_a_retried_uninstall_still_gets_its_first_answer(
    api: httpx.AsyncClient, published: str, tenant: str
) -> None:
    """The install is gone after the first uninstall, but the running entity remembers the key: the
    retry is answered by the workflow, not refused as not installed."""
    base = f"/v1/tenants/{tenant}/installs"
    resp = await api.post(base, json={"extension": published, "version": "1.0.0"}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    key = {**ADMIN, "idempotency-key": "uninstall-" + uuid.uuid4().hex}
    first = await api.delete(f"{base}/{published}", headers=key)
    assert first.status_code == 200 and first.json()["changed"] is True, first.text
    again = await api.delete(f"{base}/{published}", headers=key)
    assert (again.status_code, again.json()) == (200, first.json())
    # A new request for the uninstalled extension is refused like any change of what is not installed.
    fresh = await api.delete(f"{base}/{published}", headers=ADMIN)
    assert (fresh.status_code, fresh.json()["error"]) == (404, "not_found"), fresh.text


async def test_installing_a_revoked_version_starts_nothing(
    api: httpx.AsyncClient, worker: None, tmp_path: Path, tenant: str, temporal_client: Client
) -> None:
    signer = Signer("acme")
    await trust_via_api(api, signer)
    name = unique_name()
    await publish(api, tmp_path, signer, name, "1.0.0")
    revoked = await api.post(f"/v1/trust/keys/{signer.key_id}/revoke", json={}, headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    body = {"extension": name, "version": "1.0.0"}
    out = await _refused(api, temporal_client, tenant, name, "POST", "installs", body)
    assert out["error"] == "version_not_installable" and out["details"]["status"] == "revoked", out
