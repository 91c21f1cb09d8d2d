"""The app shell: health, OpenAPI, error bodies and request ids (no services needed)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.operator.app import create_app
from tests.api.conftest import make_settings


@pytest.fixture
def bare_app() -> FastAPI:
    # Nothing listens on port 1: any route needing Postgres or Temporal would fail, these must not.
    return create_app(
        make_settings(database_url="postgresql://x@127.0.0.1:1/x", temporal_address="127.0.0.1:1")
    )


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://api"
    )


async def test_health_and_openapi(bare_app: FastAPI) -> None:
    async with await _client(bare_app) as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        assert (await api.get("/docs")).status_code == 200
        paths = set((await api.get("/openapi.json")).json()["paths"])
    assert {
        "/v1/bundles",
        "/v1/extensions",
        "/v1/extensions/{name}/versions",
        "/v1/installs",
        "/v1/tenants/{tenant}/installs",
        "/v1/tenants/{tenant}/installs/{name}/upgrade",
        "/v1/trust/keys",
        "/v1/trust/keys/{key_id}/revoke",
        "/v1/tokens",
        "/v1/audit",
        "/v1/operations/{workflow_id}",
    } <= paths


async def test_unknown_route_and_bad_body_use_the_error_shape(bare_app: FastAPI) -> None:
    async with await _client(bare_app) as api:
        resp = await api.get("/v1/nothing")
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
        assert resp.json()["request_id"] == resp.headers["x-request-id"]
        resp = await api.post(
            "/v1/tokens", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert resp.status_code in (400, 401) and resp.json()["request_id"] == resp.headers["x-request-id"]


async def test_unhandled_errors_are_json_500_with_request_id(bare_app: FastAPI) -> None:
    @bare_app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom secret detail")

    async with await _client(bare_app) as api:
        resp = await api.get("/boom", headers={"x-request-id": "req-1"})
    assert resp.status_code == 500
    assert resp.json() == {"error": "internal", "message": "internal error", "request_id": "req-1"}
    assert resp.headers["x-request-id"] == "req-1"
