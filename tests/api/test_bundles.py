"""`POST /v1/bundles`: streamed upload to staging, size cap, declared hash, and publish end to end."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.operator.settings import OperatorSettings
from tests.api.conftest import ADMIN, SignedBundle, signed_bundle, trust_via_api
from tests.workflows.helpers import Signer, eventually, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal]


def _staging_files(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs" / "staging"
    return sorted(root.iterdir()) if root.exists() else []


def _upload_headers(digest: str) -> dict[str, str]:
    b = SignedBundle(data=b"", content_hash=digest, signature='{"key_id": "x"}')
    return b.headers()


@pytest.fixture
def small_cap(settings: OperatorSettings) -> OperatorSettings:
    return settings.model_copy(update={"max_bundle_bytes": 1024})


@pytest.fixture
async def capped_api(small_cap: OperatorSettings) -> AsyncIterator[httpx.AsyncClient]:
    from api.operator.app import create_app

    app: FastAPI = create_app(small_cap)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as c:
        yield c
    await app.state.resources.aclose()


async def test_declared_length_over_cap_is_413(capped_api: httpx.AsyncClient, data_dir: Path) -> None:
    body = b"x" * 2048
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    resp = await capped_api.post("/v1/bundles", content=body, headers=_upload_headers(digest))
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "payload_too_large"
    assert _staging_files(data_dir) == []


async def test_streamed_body_over_cap_is_413_and_leaves_nothing(
    capped_api: httpx.AsyncClient, data_dir: Path
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):  # no content-length: chunked, so only the streaming count can stop it
            yield b"y" * 512

    resp = await capped_api.post(
        "/v1/bundles", content=chunks(), headers=_upload_headers("sha256:" + "a" * 64)
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "payload_too_large"
    assert _staging_files(data_dir) == []


async def test_declared_hash_mismatch_is_400(api: httpx.AsyncClient, data_dir: Path) -> None:
    resp = await api.post(
        "/v1/bundles", content=b"not the declared bytes", headers=_upload_headers("sha256:" + "b" * 64)
    )
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"] == "hash_mismatch" and "sha256:" + "b" * 64 in body["message"]
    assert _staging_files(data_dir) == []


@pytest.mark.parametrize(
    ("headers", "query", "message"),
    [
        ({}, "", "content hash"),
        ({"x-content-hash": "md5:abc"}, "", "sha256:"),
        ({"x-content-hash": "sha256:" + "c" * 64, "x-bundle-signature": "%%%"}, "", "base64"),
        ({"x-content-hash": "sha256:" + "c" * 64}, "?content_hash=sha256:" + "d" * 64, "disagree"),
    ],
)
async def test_malformed_upload_requests_are_400(
    api: httpx.AsyncClient, headers: dict[str, str], query: str, message: str
) -> None:
    base = {**ADMIN, "x-bundle-signature": "e30="}  # base64 of "{}"
    resp = await api.post("/v1/bundles" + query, content=b"data", headers={**base, **headers})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request" and message in resp.json()["message"]


async def test_publish_end_to_end(
    api: httpx.AsyncClient, worker: None, tmp_path: Path, db_pool: asyncpg.Pool, data_dir: Path
) -> None:
    signer = Signer("acme")
    trusted = await trust_via_api(api, signer)
    assert trusted["key_id"] == signer.key_id and trusted["added"] is True
    name = unique_name()
    bundle = signed_bundle(tmp_path, signer, name)

    resp = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["name"], out["version"], out["content_hash"]) == (name, "1.0.0", bundle.content_hash)
    assert out["signer_key_id"] == signer.key_id and out["already_published"] is False
    assert out["workflow_id"] == "publish/" + bundle.content_hash.removeprefix("sha256:")
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 1

    # The same bytes again: the earlier result, no second version, the extra upload not kept.
    again = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
    assert again.status_code == 200, again.text
    assert again.json()["already_published"] is True and again.json()["workflow_id"] == out["workflow_id"]
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 1
    assert _staging_files(data_dir) == []

    # Listed in the registry.
    exts = (await api.get("/v1/extensions", headers=ADMIN)).json()
    assert [(e["name"], e["versions"]) for e in exts] == [(name, ["1.0.0"])]
    version = (await api.get(f"/v1/extensions/{name}/versions/1.0.0", headers=ADMIN)).json()
    assert version["content_hash"] == bundle.content_hash and version["manifest"]["name"] == name

    # Another bundle claiming the same name@version: 409 version_exists.
    other = signed_bundle(tmp_path, signer, name, capabilities=["cap:log.emit"])
    assert other.content_hash != bundle.content_hash
    conflict = await api.post("/v1/bundles", content=other.data, headers=other.headers())
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"] == "version_exists"


async def test_publish_without_wait_returns_the_operation(
    api: httpx.AsyncClient, worker: None, tmp_path: Path
) -> None:
    signer = Signer("acme")
    await trust_via_api(api, signer)
    bundle = signed_bundle(tmp_path, signer, unique_name())
    resp = await api.post("/v1/bundles?wait=false", content=bundle.data, headers=bundle.headers())
    assert resp.status_code == 202, resp.text
    op_id = resp.json()["operation_id"]
    assert op_id == "publish/" + bundle.content_hash.removeprefix("sha256:")

    async def completed() -> dict[str, object] | None:
        op = (await api.get(f"/v1/operations/{op_id}", headers=ADMIN)).json()
        return op if op["status"] == "completed" else None

    op = await eventually(completed, timeout=45, what="publish to complete")
    assert op["workflow_type"] == "Publish"
    assert isinstance(op["result"], dict) and op["result"]["content_hash"] == bundle.content_hash
    assert str(op["ui_url"]).endswith("/workflows/publish%2F" + bundle.content_hash.removeprefix("sha256:"))


async def test_untrusted_signature_is_refused(api: httpx.AsyncClient, worker: None, tmp_path: Path) -> None:
    bundle = signed_bundle(tmp_path, Signer("acme"), unique_name())  # key never trusted
    resp = await api.post("/v1/bundles", content=bundle.data, headers=bundle.headers())
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "untrusted_key"
    op = (
        await api.get("/v1/operations/publish/" + bundle.content_hash.removeprefix("sha256:"), headers=ADMIN)
    ).json()
    assert op["status"] == "failed" and op["error"]["error"] == "untrusted_key"


async def test_unknown_operation_is_404(api: httpx.AsyncClient) -> None:
    resp = await api.get("/v1/operations/publish/" + "0" * 64, headers=ADMIN)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
