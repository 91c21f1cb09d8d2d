"""`POST /v1/tokens` through CreateTokenWorkflow: hash-only storage, audit, and who may mint what."""

from __future__ import annotations

import base64

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from api.auth import token_hash
from api.operator.settings import OperatorSettings
from schema.payloads.tokens import CreateTokenInput
from tests.api.conftest import ADMIN, ADMIN_TOKEN, bearer, insert_token, make_settings, new_token
from workflows.tokens import TOKEN_WORKFLOWS

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


async def test_admin_creates_a_tenant_token_stored_only_as_hash(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, temporal_client: Client, worker: None
) -> None:
    resp = await api.post(
        "/v1/tokens",
        json={"tenant_id": "acme", "scopes": ["installs:manage", "ext:read"], "name": "ci"},
        headers=ADMIN,
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    token = out["token"]
    assert token.startswith("ext_") and len(token) > 40
    assert out["scopes"] == ["ext:read", "installs:manage"]
    assert out["workflow_id"] == f"token/{out['token_id']}"
    assert out["ui_url"].endswith("/workflows/token%2F" + out["token_id"])

    row = await db_pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1::uuid", out["token_id"])
    assert row is not None and row["token_hash"] == token_hash(token) and row["tenant_id"] == "acme"
    assert token not in str(dict(row))

    # The token works, within its tenant.
    assert (await api.get("/v1/installs", headers=bearer(token))).status_code == 200
    assert (await api.get("/v1/installs?tenant=globex", headers=bearer(token))).status_code == 403

    # Audited like every other state change.
    audit = (await api.get("/v1/audit?tenant=acme", headers=ADMIN)).json()
    assert [(e["action"], e["actor"], e["workflow_id"]) for e in audit] == [
        ("token.create", "bootstrap", out["workflow_id"])
    ]
    assert audit[0]["after"]["scopes"] == ["ext:read", "installs:manage"]

    # Only the hash entered workflow history (decoded with the codec, the input holds no token).
    history = await temporal_client.get_workflow_handle(out["workflow_id"]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (inp,) = await temporal_client.data_converter.decode(started.input.payloads, [CreateTokenInput])
    assert isinstance(inp, CreateTokenInput) and inp.token_hash == token_hash(token)
    raw = b"".join(p.SerializeToString() for p in started.input.payloads)
    assert token.encode() not in raw and base64.b64encode(token.encode()) not in raw

    # The recorded history replays deterministically against the current workflow code.
    replay = await Replayer(
        workflows=list(TOKEN_WORKFLOWS), data_converter=temporal_client.data_converter
    ).replay_workflow(history)
    assert replay.replay_failure is None


async def test_global_token_and_expiry(api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None) -> None:
    resp = await api.post("/v1/tokens", json={"scopes": ["admin"], "expires_in_seconds": 3600}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["tenant_id"] is None and out["expires_at"]
    # A global admin token minted by the bootstrap token can itself mint tokens.
    again = await api.post(
        "/v1/tokens", json={"tenant_id": "t1", "scopes": ["ext:read"]}, headers=bearer(out["token"])
    )
    assert again.status_code == 200, again.text
    row = await db_pool.fetchrow("SELECT expires_at FROM api_tokens WHERE id = $1::uuid", out["token_id"])
    assert row is not None and row["expires_at"] is not None


async def test_tenant_admin_mints_only_for_its_tenant(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None
) -> None:
    tenant_admin = new_token()
    await insert_token(db_pool, tenant_admin, scopes=["admin"], tenant_id="acme")
    h = bearer(tenant_admin)
    for body in ({"scopes": ["ext:read"]}, {"tenant_id": "globex", "scopes": ["ext:read"]}):
        resp = await api.post("/v1/tokens", json=body, headers=h)
        assert resp.status_code == 403 and resp.json()["error"] == "tenant_mismatch", resp.text
    resp = await api.post("/v1/tokens", json={"tenant_id": "acme", "scopes": ["ext:write"]}, headers=h)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "body",
    [{"scopes": ["root"]}, {"scopes": []}, {"scopes": ["ext:read"], "expires_at": "2030-01-01T00:00:00"}],
)
async def test_bad_token_requests_are_400(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    resp = await api.post("/v1/tokens", json=body, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


async def test_temporal_unreachable_is_503(unused_tcp_port: int) -> None:
    from api.operator.app import create_app

    settings: OperatorSettings = make_settings(temporal_address=f"127.0.0.1:{unused_tcp_port}")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api:
        resp = await api.post("/v1/tokens", json={"scopes": ["ext:read"]}, headers=bearer(ADMIN_TOKEN))
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "control_plane_unavailable"
