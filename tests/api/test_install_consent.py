"""Install consent and the consistency of install/config/rollback through the operator API, with the real
worker: what a version asks for is shown, an upgrade that adds anything is refused (409 consent_required,
the diff in details) before any workflow runs, and passes with exactly that accepted; the audit row
records requested, granted and accepted; re-install is declarative; config set merges unless replace;
rollback --to only to a version the install ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from schema.temporal import install_workflow_id
from tests.api.conftest import ADMIN, signed_bundle, trust_via_api
from tests.workflows.helpers import Signer, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

HTTP, KV = "cap:http.fetch", "cap:storage.kv"
DEFAULTS = ["cap:context.read", "cap:log.emit", "cap:user.read"]


async def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture
async def grown(api: httpx.AsyncClient, worker: None, tmp_path: Path) -> str:
    """An extension whose 2.0.0 asks for cap:http.fetch and an egress host that 1.0.0 does not."""
    signer = Signer("acme")
    await trust_via_api(api, signer)
    name = unique_name()
    for version, caps, egress in (
        ("1.0.0", [KV], []),
        ("2.0.0", [KV, HTTP], ["api.example.com"]),
        ("3.0.0", [KV], []),
    ):
        bundle = signed_bundle(tmp_path, signer, name, version, capabilities=caps, egress=egress)
        resp = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
        assert resp.status_code == 200, resp.text
    return name


async def _last_change_audit(api: httpx.AsyncClient, tenant: str, name: str, action: str) -> dict[str, Any]:
    rows = await _ok_list(
        await api.get("/v1/audit", params={"tenant": tenant, "extension": name}, headers=ADMIN)
    )
    found = [r for r in rows if r["action"] == action and r["step"] == "change"]
    assert found, [r["action"] for r in rows]
    return found[0]


async def _ok_list(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    body: list[dict[str, Any]] = resp.json()
    return body


async def test_upgrade_that_adds_is_refused_with_the_diff_until_exactly_that_is_accepted(
    api: httpx.AsyncClient, grown: str, tenant: str, temporal_client: Client
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{grown}"
    out = await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": grown, "version": "1.0.0"}, headers=ADMIN
        )
    )
    assert out["requested"] == {"capabilities": sorted([*DEFAULTS, KV]), "egress": []}
    assert out["granted"] == out["requested"]
    changes_before = [
        wf.id
        async for wf in temporal_client.list_workflows(
            f"WorkflowId STARTS_WITH '{install_workflow_id(tenant, grown)}/'"
        )
    ]

    refused = await api.post(f"{base}/upgrade", json={"version": "2.0.0"}, headers=ADMIN)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "consent_required"
    assert body["details"]["added"] == {"capabilities": [HTTP], "egress": ["api.example.com"]}
    assert "cap:http.fetch" in body["message"] and "api.example.com" in body["message"]

    fewer = await api.post(
        f"{base}/upgrade", json={"version": "2.0.0", "accept": {"capabilities": [HTTP]}}, headers=ADMIN
    )
    assert fewer.status_code == 409 and fewer.json()["details"]["missing"] == {
        "capabilities": [],
        "egress": ["api.example.com"],
    }
    more = await api.post(
        f"{base}/upgrade",
        json={"version": "2.0.0", "accept": {"capabilities": [HTTP, KV], "egress": ["api.example.com"]}},
        headers=ADMIN,
    )
    assert more.status_code == 400 and more.json()["error"] == "invalid_request", more.text
    # Refused in the API: no change workflow ran for any of them, and the install did not move.
    changes_after = [
        wf.id
        async for wf in temporal_client.list_workflows(
            f"WorkflowId STARTS_WITH '{install_workflow_id(tenant, grown)}/'"
        )
    ]
    assert len(changes_after) == len(changes_before)
    assert (await _ok(await api.get(base, headers=ADMIN)))["version"] == "1.0.0"

    accept = {"capabilities": [HTTP], "egress": ["api.example.com"]}
    up = await _ok(
        await api.post(f"{base}/upgrade", json={"version": "2.0.0", "accept": accept}, headers=ADMIN)
    )
    assert up["version"] == "2.0.0"
    assert up["granted"] == {"capabilities": sorted([*DEFAULTS, KV, HTTP]), "egress": ["api.example.com"]}
    status = await _ok(await api.get(base, headers=ADMIN))
    assert HTTP in status["granted_capabilities"] and status["granted_egress"] == ["api.example.com"]

    row = await _last_change_audit(api, tenant, grown, "upgrade")
    consent = row["after"]["consent"]
    assert consent["accepted"] == accept and consent["added"] == accept
    assert consent["requested"]["egress"] == ["api.example.com"]
    assert consent["granted"]["capabilities"] == status["granted_capabilities"]


async def test_what_the_operator_denies_is_not_granted_and_stays_denied(
    api: httpx.AsyncClient, grown: str, tenant: str
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{grown}"
    await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": grown, "version": "1.0.0"}, headers=ADMIN
        )
    )
    deny = {"capabilities": [HTTP], "egress": ["api.example.com"]}
    up = await _ok(await api.post(f"{base}/upgrade", json={"version": "2.0.0", "deny": deny}, headers=ADMIN))
    assert up["requested"]["capabilities"] == sorted([*DEFAULTS, KV, HTTP])
    assert up["granted"] == {"capabilities": sorted([*DEFAULTS, KV]), "egress": []}
    row = await _last_change_audit(api, tenant, grown, "upgrade")
    assert row["after"]["consent"]["denied"] == deny

    bad = await api.post(
        f"/v1/tenants/{tenant}/installs",
        json={"extension": grown, "version": "2.0.0", "deny": {"capabilities": ["cap:log.emit"]}},
        headers=ADMIN,
    )
    assert bad.status_code == 400 and "default" in bad.json()["message"], bad.text


async def test_rollback_walks_history_back_and_to_only_where_it_ran(
    api: httpx.AsyncClient, grown: str, tenant: str
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{grown}"
    install = {"extension": grown, "version": "1.0.0"}
    await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=install, headers=ADMIN))
    never = await api.post(f"{base}/rollback", json={"version": "3.0.0"}, headers=ADMIN)
    assert never.status_code == 409, never.text
    assert never.json()["error"] == "version_not_in_history"
    assert never.json()["details"] == {"version": "3.0.0"}

    accept = {"capabilities": [HTTP], "egress": ["api.example.com"]}
    await _ok(await api.post(f"{base}/upgrade", json={"version": "2.0.0", "accept": accept}, headers=ADMIN))
    await _ok(await api.post(f"{base}/upgrade", json={"version": "3.0.0"}, headers=ADMIN))  # asks for less
    # Back to 2.0.0 (the previous in history): it asks again for what 3.0.0 dropped, so consent first.
    refused = await api.post(f"{base}/rollback", json={}, headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"] == "consent_required", refused.text
    assert refused.json()["details"]["version"] == "2.0.0"
    back = await _ok(await api.post(f"{base}/rollback", json={"accept": accept}, headers=ADMIN))
    assert back["version"] == "2.0.0"
    # Again: further back to 1.0.0, never forth to 3.0.0.
    assert (await _ok(await api.post(f"{base}/rollback", json={}, headers=ADMIN)))["version"] == "1.0.0"


async def test_reinstall_replaces_a_given_config_and_config_set_merges(
    api: httpx.AsyncClient, grown: str, tenant: str
) -> None:
    base = f"/v1/tenants/{tenant}/installs/{grown}"
    body: dict[str, Any] = {"extension": grown, "version": "1.0.0", "config": {"a": 1, "b": 1}}
    await _ok(await api.post(f"/v1/tenants/{tenant}/installs", json=body, headers=ADMIN))
    again = await _ok(
        await api.post(f"/v1/tenants/{tenant}/installs", json={**body, "config": {"b": 2}}, headers=ADMIN)
    )
    assert (again["changed"], again["config_version"]) == (True, 2)
    assert (await _ok(await api.get(base, headers=ADMIN)))["config"] == {"b": 2}
    # Secrets the same way: a given set replaces the secret set, an omitted one leaves it.
    sec = await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs",
            json={"extension": grown, "version": "1.0.0", "secrets": {"k2": "v"}},
            headers=ADMIN,
        )
    )
    assert (sec["secret_keys"], sec["secrets_version"], sec["config_version"]) == (["k2"], 1, 2)
    kept = await _ok(
        await api.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": grown, "version": "1.0.0"}, headers=ADMIN
        )
    )
    assert (kept["changed"], kept["secrets_version"]) == (False, 1)

    await _ok(await api.put(f"{base}/config", json={"config": {"c": 3}}, headers=ADMIN))
    assert (await _ok(await api.get(base, headers=ADMIN)))["config"] == {"b": 2, "c": 3}
    await _ok(await api.put(f"{base}/config", json={"config": {"d": 4}, "replace": True}, headers=ADMIN))
    assert (await _ok(await api.get(base, headers=ADMIN)))["config"] == {"d": 4}
