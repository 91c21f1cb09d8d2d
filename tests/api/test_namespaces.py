"""`/v1/namespaces`: admin-only registration, and the publish route's refusal before any workflow."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from schema.temporal import publish_workflow_id, register_namespace_workflow_id
from tests.api.conftest import (
    ADMIN,
    assert_no_workflow,
    bearer,
    insert_token,
    new_token,
    signed_bundle,
    trust_via_api,
)
from tests.workflows.helpers import Signer

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


def fresh_prefix() -> str:
    # One Temporal server serves every test: a prefix of its own keeps workflow ids apart.
    return f"com.cpother{uuid.uuid4().hex[:8]}"


def staged_uploads(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file() and "staging" in p.parts]


async def test_admin_registers_lists_and_removes_a_namespace(
    api: httpx.AsyncClient, worker: None, db_pool: asyncpg.Pool
) -> None:
    prefix = fresh_prefix()

    resp = await api.put(f"/v1/namespaces/{prefix}", json={"publisher": "cpother"}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["prefix"], body["publisher"], body["added"]) == (prefix, "cpother", True)
    assert body["workflow_id"] == register_namespace_workflow_id(prefix)
    again = await api.put(f"/v1/namespaces/{prefix}", json={"publisher": "cpother"}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["added"] is False

    listed = (await api.get("/v1/namespaces", headers=ADMIN)).json()
    assert [(n["prefix"], n["publisher"], n["source"]) for n in listed] == [(prefix, "cpother", "registered")]
    audit = await db_pool.fetch(
        "SELECT action, workflow_id, after FROM audit_events WHERE action LIKE 'namespace_%' ORDER BY id"
    )
    assert [(r["action"], r["workflow_id"]) for r in audit] == [
        ("namespace_registered", body["workflow_id"]),
        ("namespace_noop", body["workflow_id"]),
    ]
    assert audit[0]["after"] == {"prefix": prefix, "publisher": "cpother"}

    # Another publisher's prefix: refused by the registry before any workflow starts.
    taken = await api.put(f"/v1/namespaces/{prefix}", json={"publisher": "cptest"}, headers=ADMIN)
    assert (taken.status_code, taken.json()["error"]) == (409, "conflict")

    gone = await api.delete(f"/v1/namespaces/{prefix}", headers=ADMIN)
    assert gone.status_code == 200 and (gone.json()["removed"], gone.json()["publisher"]) == (True, "cpother")
    assert (await api.get("/v1/namespaces", headers=ADMIN)).json() == []
    actions = await db_pool.fetch(
        "SELECT action FROM audit_events WHERE action LIKE 'namespace_%' ORDER BY id"
    )
    assert actions[-1]["action"] == "namespace_removed"


async def test_a_tenant_token_cannot_register_or_remove_a_namespace(
    api: httpx.AsyncClient, temporal_client: Client, db_pool: asyncpg.Pool
) -> None:
    prefix = fresh_prefix()
    tenant_admin = new_token()
    await insert_token(db_pool, tenant_admin, scopes=["admin"], tenant_id="t-ns")
    publisher_only = new_token()
    await insert_token(db_pool, publisher_only, scopes=["registry:publish"])

    for token in (tenant_admin, publisher_only):
        put = await api.put(f"/v1/namespaces/{prefix}", json={"publisher": "cptest"}, headers=bearer(token))
        assert (put.status_code, put.json()["error"]) == (403, "forbidden"), put.text
        delete = await api.delete(f"/v1/namespaces/{prefix}", headers=bearer(token))
        assert delete.status_code == 403
    # A publisher may read the namespaces (to know where it can publish).
    assert (await api.get("/v1/namespaces", headers=bearer(publisher_only))).status_code == 200
    await assert_no_workflow(temporal_client, register_namespace_workflow_id(prefix))
    assert await db_pool.fetchval("SELECT count(*) FROM namespaces") == 0


async def test_a_prefix_must_be_spelled_like_a_name(api: httpx.AsyncClient) -> None:
    for bad in ("com", "Com.Acme", "com..acme", "com.acme-"):
        resp = await api.put(f"/v1/namespaces/{bad}", json={"publisher": "cptest"}, headers=ADMIN)
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), bad


async def test_publishing_into_another_publishers_namespace_is_refused_before_any_workflow(
    api: httpx.AsyncClient,
    worker: None,
    temporal_client: Client,
    db_pool: asyncpg.Pool,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    prefix = fresh_prefix()
    cptest, cpother = Signer("cptest"), Signer("cpother")
    await trust_via_api(api, cptest)
    await trust_via_api(api, cpother)
    assert (
        await api.put(f"/v1/namespaces/{prefix}", json={"publisher": "cpother"}, headers=ADMIN)
    ).status_code == 200

    squat = signed_bundle(tmp_path, cptest, f"{prefix}.squat")
    resp = await api.post("/v1/bundles", content=squat.data, headers=squat.headers())

    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "namespace_owned"
    assert prefix in resp.json()["message"]
    await assert_no_workflow(temporal_client, publish_workflow_id(squat.content_hash))
    assert staged_uploads(data_dir) == []
    assert await db_pool.fetchval("SELECT count(*) FROM extensions") == 0

    owned = signed_bundle(tmp_path, cpother, f"{prefix}.squat")
    ok = await api.post("/v1/bundles", content=owned.data, headers=owned.headers())
    assert ok.status_code == 200, ok.text
    assert (ok.json()["name"], ok.json()["publisher"]) == (f"{prefix}.squat", "cpother")
    assert ok.json()["claimed_namespace"] == ""  # registered, not claimed
    # The name is cpother's now: cptest cannot publish a version of it either.
    again = signed_bundle(tmp_path, cptest, f"{prefix}.squat", "2.0.0")
    refused = await api.post("/v1/bundles", content=again.data, headers=again.headers())
    assert (refused.status_code, refused.json()["error"]) == (403, "namespace_owned")
