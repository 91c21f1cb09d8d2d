"""Token lifecycle (issue 12): named tokens and their Actor, `GET /v1/tokens`, and revocation through
RevokeTokenWorkflow (audited, one-way, idempotent, tenant-bound)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.worker import Replayer

from api.auth import token_hash
from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from schema.temporal import SearchAttribute
from tests.api.conftest import ADMIN, bearer, insert_token, new_token
from tests.support.polling import eventually
from workflows.tokens import TOKEN_WORKFLOWS

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

ACTOR = SearchAttributeKey.for_keyword(SearchAttribute.ACTOR.value)
OPERATION = SearchAttributeKey.for_keyword(SearchAttribute.OPERATION.value)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(api: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await api.post("/v1/tokens", json={"scopes": ["admin"], **body}, headers=headers)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def audit_of(api: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    resp = await api.get("/v1/audit?limit=1000", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json() if e["workflow_id"] == workflow_id]


async def test_a_named_token_is_the_actor_in_audit_and_search_attributes(
    api: httpx.AsyncClient, temporal_client: Client, worker: None
) -> None:
    alice = unique("alice")
    glob = await create(api, ADMIN, name=alice)
    assert (glob["name"], glob["identity"]) == (alice, alice)
    # The bootstrap token shows as its own identity, never as the token.
    (made,) = await audit_of(api, glob["workflow_id"])
    assert made["actor"] == "bootstrap" and made["after"]["identity"] == alice

    tenant = unique("acme")
    bob = await create(api, bearer(glob["token"]), tenant_id=tenant, name="bob")
    assert bob["identity"] == f"{tenant}/bob"
    third = await create(api, bearer(bob["token"]), tenant_id=tenant, scopes=["ext:read"], name="ci")

    for out, actor in ((bob, alice), (third, f"{tenant}/bob")):
        (row,) = await audit_of(api, out["workflow_id"])
        assert (row["action"], row["actor"]) == ("token.create", actor)
        desc = await temporal_client.get_workflow_handle(out["workflow_id"]).describe()
        assert desc.typed_search_attributes.get(ACTOR) == actor
        assert desc.typed_search_attributes.get(OPERATION) == "token_create"
        for secret in (glob["token"], bob["token"]):
            assert secret not in str(row)

    # Searchable by name in Temporal (what Temporal UI's filter runs).
    async def listed() -> list[str] | None:
        ids = [wf.id async for wf in temporal_client.list_workflows(f'Actor = "{alice}"')]
        return ids or None

    assert await eventually(listed, deadline_s=30) == [bob["workflow_id"]]


async def test_tokens_without_a_name_act_as_token_id(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None
) -> None:
    old = new_token()
    old_id = await insert_token(db_pool, old, scopes=["admin"])  # a row from before names existed
    out = await create(api, bearer(old), scopes=["ext:read"], tenant_id="t1")
    (row,) = await audit_of(api, out["workflow_id"])
    assert row["actor"] == f"token:{old_id}"
    # Created without a name (CONTRACT.md: --name is optional): a derived one, unique by the id.
    assert out["name"] == "token-" + out["token_id"].replace("-", "")[:12]
    assert out["identity"] == f"t1/{out['name']}"


@pytest.mark.parametrize("name", ["Alice", "-x", "a/b", "a:b", "x" * 64, "bootstrap", "admin", "a b"])
async def test_bad_names_are_400(api: httpx.AsyncClient, name: str) -> None:
    resp = await api.post("/v1/tokens", json={"scopes": ["ext:read"], "name": name}, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


async def test_names_are_unique_among_live_tokens_of_a_tenant(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None
) -> None:
    first = await create(api, ADMIN, tenant_id="acme", name="ops")
    again = await api.post(
        "/v1/tokens", json={"tenant_id": "acme", "scopes": ["admin"], "name": "ops"}, headers=ADMIN
    )
    assert again.status_code == 409 and again.json()["error"] == "conflict", again.text
    # The same name in another tenant, or as a global token, is another identity.
    await create(api, ADMIN, tenant_id="globex", name="ops")
    await create(api, ADMIN, name="ops")
    # Revoking frees the name for a successor.
    assert (await api.post(f"/v1/tokens/{first['token_id']}/revoke", headers=ADMIN)).status_code == 200
    second = await create(api, ADMIN, tenant_id="acme", name="ops")
    assert second["identity"] == "acme/ops"
    live = await db_pool.fetchval(
        "SELECT count(*) FROM api_tokens WHERE identity = 'acme/ops' AND revoked_at IS NULL"
    )
    assert live == 1


async def test_listing_shows_no_hash_and_stays_in_the_tenant(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None
) -> None:
    acme_admin = await create(api, ADMIN, tenant_id="acme", name="root")
    reader = await create(api, ADMIN, tenant_id="acme", name="reader", scopes=["ext:read"])
    other = await create(api, ADMIN, tenant_id="globex", name="root")
    glob = await create(api, ADMIN, name="ops")

    everything = await api.get("/v1/tokens", headers=ADMIN)
    assert everything.status_code == 200, everything.text
    rows = everything.json()
    assert {r["token_id"] for r in rows} == {t["token_id"] for t in (acme_admin, reader, other, glob)}
    for row in rows:
        assert set(row) == {
            "token_id",
            "tenant_id",
            "name",
            "identity",
            "scopes",
            "status",
            "created_at",
            "expires_at",
            "revoked_at",
        }
    stored = await db_pool.fetch("SELECT token_hash FROM api_tokens")
    assert not any(r["token_hash"] in everything.text for r in stored)

    by_tenant = (await api.get("/v1/tokens?tenant=acme", headers=ADMIN)).json()
    assert [r["identity"] for r in by_tenant] == ["acme/reader", "acme/root"]

    h = bearer(acme_admin["token"])
    own = (await api.get("/v1/tokens", headers=h)).json()
    assert {r["tenant_id"] for r in own} == {"acme"} and len(own) == 2
    assert (await api.get("/v1/tokens?tenant=acme", headers=h)).status_code == 200
    refused = await api.get("/v1/tokens?tenant=globex", headers=h)
    assert refused.status_code == 403 and refused.json()["error"] == "tenant_mismatch"
    assert (await api.get("/v1/tokens", headers=bearer(reader["token"]))).status_code == 403


async def test_revoke_is_audited_one_way_and_idempotent(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, temporal_client: Client, worker: None
) -> None:
    ops = await create(api, ADMIN, name=unique("ops"))
    victim = await create(api, ADMIN, tenant_id="acme", name="leaked", scopes=["ext:read"])
    h = bearer(victim["token"])
    assert (await api.get("/v1/installs?tenant=acme", headers=h)).status_code == 200

    resp = await api.post(
        f"/v1/tokens/{victim['token_id']}/revoke",
        json={"reason": "pasted in chat"},
        headers=bearer(ops["token"]),
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["already_revoked"] is False and out["identity"] == "acme/leaked"
    assert out["workflow_id"] == f"token-revoke/{victim['token_id']}"
    revoked_at = out["revoked_at"]

    denied = await api.get("/v1/installs?tenant=acme", headers=h)
    assert denied.status_code == 401 and denied.json()["error"] == "unauthenticated"

    (row,) = await audit_of(api, out["workflow_id"])
    assert (row["action"], row["actor"], row["tenant_id"]) == ("token.revoke", ops["identity"], "acme")
    assert row["after"]["changed"] is True and row["after"]["reason"] == "pasted in chat"
    desc = await temporal_client.get_workflow_handle(out["workflow_id"]).describe()
    assert desc.typed_search_attributes.get(ACTOR) == ops["identity"]
    assert desc.typed_search_attributes.get(OPERATION) == "token_revoke"

    # Twice: nothing changes, the first revocation time stays.
    twice = await api.post(f"/v1/tokens/{victim['token_id']}/revoke", headers=ADMIN)
    assert twice.status_code == 200, twice.text
    assert twice.json()["already_revoked"] is True and twice.json()["revoked_at"] == revoked_at
    listed = (await api.get("/v1/tokens?tenant=acme", headers=ADMIN)).json()
    assert [(r["status"], r["revoked_at"]) for r in listed] == [("revoked", revoked_at)]
    # Still refused after the second run: nothing un-revokes.
    assert (await api.get("/v1/installs?tenant=acme", headers=h)).status_code == 401
    db_revoked = await db_pool.fetchval(
        "SELECT revoked_at FROM api_tokens WHERE id = $1::uuid", victim["token_id"]
    )
    assert db_revoked is not None

    history = await temporal_client.get_workflow_handle(out["workflow_id"]).fetch_history()
    replay = await Replayer(
        workflows=list(TOKEN_WORKFLOWS), data_converter=temporal_client.data_converter
    ).replay_workflow(history)
    assert replay.replay_failure is None


async def test_revoke_unknown_or_foreign_tokens_is_404(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, worker: None
) -> None:
    for token_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await api.post(f"/v1/tokens/{token_id}/revoke", headers=ADMIN)
        assert resp.status_code == 404 and resp.json()["error"] == "token_not_found", resp.text

    acme_admin = await create(api, ADMIN, tenant_id="acme", name="root")
    globex = await create(api, ADMIN, tenant_id="globex", name="reader", scopes=["ext:read"])
    glob = await create(api, ADMIN, name="ops")
    h = bearer(acme_admin["token"])
    for foreign in (globex, glob):
        resp = await api.post(f"/v1/tokens/{foreign['token_id']}/revoke", headers=h)
        assert resp.status_code == 404 and resp.json()["error"] == "token_not_found", resp.text
    live = await db_pool.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
    assert live == 3
    # A non-admin token may not revoke, even its own.
    resp = await api.post(f"/v1/tokens/{globex['token_id']}/revoke", headers=bearer(globex["token"]))
    assert resp.status_code == 403
    # A tenant admin revokes its own tenant's tokens (itself included).
    resp = await api.post(f"/v1/tokens/{acme_admin['token_id']}/revoke", headers=h)
    assert resp.status_code == 200, resp.text


async def test_revocation_passes_the_operator_api_token_cache(
    settings: OperatorSettings, db_pool: asyncpg.Pool, worker: None
) -> None:
    # A long cache: without the revoking process dropping the token, it would be served for 10 min.
    app = create_app(settings.model_copy(update={"token_cache_seconds": 600.0}))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://api", timeout=60
        ) as api:
            token = new_token()
            token_id = await insert_token(db_pool, token, scopes=["admin"], tenant_id="acme")
            assert (await api.get("/v1/tokens", headers=bearer(token))).status_code == 200  # now cached
            resp = await api.post(f"/v1/tokens/{token_id}/revoke", headers=ADMIN)
            assert resp.status_code == 200, resp.text
            assert (await api.get("/v1/tokens", headers=bearer(token))).status_code == 401
            assert await db_pool.fetchval(
                "SELECT revoked_at IS NOT NULL FROM api_tokens WHERE token_hash = $1", token_hash(token)
            )
    finally:
        await app.state.resources.aclose()
