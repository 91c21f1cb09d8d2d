"""extctl install/upgrade consent and config merge as a user runs them (subprocess against the real API)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

# The operator-API and extctl fixtures shared with the other CLI tests.
from tests.api.conftest import (  # noqa: F401
    ADMIN_TOKEN,
    bearer,
    data_dir,
    keyring,
    settings,
    signed_bundle,
    temporal_client,
    trust_via_api,
    worker,
)
from tests.cli.test_operator_cli import Extctl, api_url, extctl, tenant  # noqa: F401
from tests.workflows.helpers import Signer, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(150)]

HTTP = "cap:http.fetch"


async def _publish(api_url: str, tmp: Path, name: str) -> None:  # noqa: F811
    """1.0.0 asks for storage; 2.0.0 adds cap:http.fetch and the egress host api.example.com."""
    signer = Signer("acme")
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_TOKEN), timeout=60) as api:
        await trust_via_api(api, signer)
        for version, caps, egress in (
            ("1.0.0", ["cap:storage.kv"], []),
            ("2.0.0", ["cap:storage.kv", HTTP], ["api.example.com"]),
        ):
            b = signed_bundle(tmp, signer, name, version, capabilities=caps, egress=egress)
            resp = await api.post("/v1/bundles", content=b.data, headers=b.headers())
            assert resp.status_code == 200, resp.text


@pytest.mark.usefixtures("worker")
async def test_install_shows_grants_upgrade_needs_accept_config_merges(
    extctl: Extctl,  # noqa: F811
    api_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
) -> None:
    name = unique_name()
    await _publish(api_url, tmp_path, name)
    out = await extctl("install", f"{name}@1.0.0", "--tenant", tenant, "--deny", "cap:storage.kv")
    assert "cap:storage.kv" in out.stdout and "(not granted: cap:storage.kv)" in out.stdout

    refused = await extctl("upgrade", f"{name}@2.0.0", "--tenant", tenant, ok=False)
    assert refused.code == 1
    assert "consent_required" in refused.stderr + refused.stdout
    assert "api.example.com" in refused.stderr + refused.stdout

    up = await extctl(
        "--json",
        "upgrade",
        f"{name}@2.0.0",
        "--tenant",
        tenant,
        "--accept",
        HTTP,
        "--accept",
        "api.example.com",
    )
    granted = up.json()["granted"]
    assert HTTP in granted["capabilities"] and "cap:storage.kv" not in granted["capabilities"]
    assert granted["egress"] == ["api.example.com"]
    status = await extctl("status", name, "--tenant", tenant)
    assert "egress hosts     api.example.com" in status.stdout

    await extctl("config", "set", name, "--tenant", tenant, "a=1")
    await extctl("config", "set", name, "--tenant", tenant, "b=2")
    assert (await extctl("--json", "status", name, "--tenant", tenant)).json()["config"] == {"a": 1, "b": 2}
    await extctl("config", "set", name, "--tenant", tenant, "c=3", "--replace")
    assert (await extctl("--json", "status", name, "--tenant", tenant)).json()["config"] == {"c": 3}
