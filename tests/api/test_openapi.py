"""The operator API's OpenAPI document says what the app answers (api/operator/openapi.py): error
responses with the error body on every operation, 400 and never a validation 422, the tenant-id rule
and the scope names; and a 405 names every method of its path. No services needed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from api.auth import PrincipalDep
from api.operator.app import create_app
from api.operator.openapi import ERROR_SCHEMA, REF_PREFIX
from schema.errors import ErrorCode
from schema.payloads.tokens import SCOPES
from schema.tenants import TENANT_RE, valid_tenant
from tests.api.conftest import ADMIN, make_settings

ERROR_REF = {"$ref": REF_PREFIX + ERROR_SCHEMA}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _app() -> FastAPI:
    # Nothing listens on port 1: only routing and the document are exercised.
    return create_app(
        make_settings(database_url="postgresql://x@127.0.0.1:1/x", temporal_address="127.0.0.1:1")
    )


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in HTTP_METHODS
    ]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _app().openapi()


def test_no_validation_422_anywhere(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in repr(doc) and "ValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        # The one 422 of the API: an Idempotency-Key sent again with another change.
        assert ("422" in op["responses"]) == ("idempotency-key" in headers), (method, path)
        if "422" in op["responses"]:
            assert "idempotency_key_reused" in op["responses"]["422"]["description"]


def test_every_operation_documents_its_errors_with_the_error_body(doc: dict[str, Any]) -> None:
    ops = _operations(doc)
    assert len(ops) > 20
    for path, method, op in ops:
        expected = {"400", "401", "403", "503"} if op.get("security") else set()
        if op.get("security") and "{" in path:
            expected.add("404")
        if op.get("security") and method in ("post", "put", "patch", "delete"):
            expected.add("409")
        assert expected <= set(op["responses"]), (method, path, sorted(op["responses"]))
        for status, response in op["responses"].items():
            assert "x-request-id" in response["headers"], (method, path, status)
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path)
    # Only health and the document itself go without a token.
    assert {path for path, _, op in ops if not op.get("security")} == {"/healthz"}


def test_the_error_body_schema_is_the_one_the_handlers_write(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    body = schemas[ERROR_SCHEMA]
    assert set(body["required"]) == {"error", "message", "request_id"}
    assert set(body["properties"]) == {"error", "message", "request_id", "details"}
    assert set(schemas["ErrorCode"]["enum"]) == {c.value for c in ErrorCode}


def test_routes_added_by_a_later_router_get_the_errors_too() -> None:
    app = _app()
    before = app.openapi()
    router = APIRouter()

    @router.put("/things/{thing}")
    async def put_thing(thing: str, principal: PrincipalDep) -> dict[str, str]:
        return {"thing": thing, "by": principal.actor}

    app.include_router(router, prefix="/v1")
    after = app.openapi()
    assert "/v1/things/{thing}" not in before["paths"]
    responses = after["paths"]["/v1/things/{thing}"]["put"]["responses"]
    assert {"400", "401", "403", "404", "409", "503"} <= set(responses) and "422" not in responses


def test_tenant_path_parameters_carry_the_tenant_rule(doc: dict[str, Any]) -> None:
    seen = 0
    for path, method, op in _operations(doc):
        for param in op.get("parameters", []):
            if param["in"] == "path" and param["name"] == "tenant":
                seen += 1
                assert param["schema"]["pattern"] == TENANT_RE, (method, path)
    assert seen >= 10
    body = doc["components"]["schemas"]["TokenBody"]["properties"]["tenant_id"]["anyOf"][0]
    assert body["pattern"] == TENANT_RE
    # The documented pattern is the rule the API enforces (`$` must not admit a trailing newline).
    for tenant in ["acme", "a", "t" * 128, "Tenant_A.eu-1", "t" * 129, "-x", "a b", "acme\n", "é"]:
        assert (re.fullmatch(TENANT_RE, tenant) is not None) == valid_tenant(tenant), tenant


def test_token_scopes_are_an_enum_of_the_known_scopes(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["TokenBody"]["properties"]["scopes"]["items"]["enum"] == list(SCOPES)
    assert schemas["TokenOut"]["properties"]["scopes"]["items"]["enum"] == list(SCOPES)


async def test_405_allow_lists_every_method_of_the_path(doc: dict[str, Any]) -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api:
        for path, ops in doc["paths"].items():
            url = re.sub(r"\{[^}]+\}", "x", path)
            declared = {m.upper() for m in ops if m in HTTP_METHODS}
            for method in sorted({"PATCH", "TRACE", "PUT", "DELETE"} - declared):
                resp = await api.request(method, url)
                assert resp.status_code == 405, (method, path, resp.text)
                assert set(resp.headers["allow"].split(", ")) == declared, (method, path)
                assert resp.json()["error"] == "invalid_request"
        # The paths of the issue: a GET with a DELETE, a GET with a POST.
        resp = await api.patch("/v1/tenants/acme/installs/com.acme.x")
        assert resp.headers["allow"] == "DELETE, GET"
        resp = await api.delete("/v1/trust/keys")
        assert resp.headers["allow"] == "GET, POST"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("url", "method", "body"),
    [
        # A number is not the documented RFC 3339 text (lax pydantic read it as a Unix time).
        ("/v1/tokens", "POST", {"scopes": ["ext:read"], "expires_at": 5}),
        ("/v1/trust/keys", "POST", {"publisher": "acme", "public_key_pem": "x", "expires_at": 5}),
        # Past datetime's range: the expiry computation raised OverflowError, a 500.
        ("/v1/tokens", "POST", {"scopes": ["ext:read"], "expires_in_seconds": 10**15}),
        # Past Postgres `integer`: the install's registry write would fail on every retry.
        ("/v1/tenants/acme/installs/com.acme.x/limits", "PUT", {"burst": 2**31}),
    ],
)
async def test_bodies_outside_the_documented_schema_are_400(
    api: httpx.AsyncClient, url: str, method: str, body: dict[str, Any]
) -> None:
    resp = await api.request(method, url, json=body, headers=ADMIN)
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), resp.text


@pytest.mark.integration
@pytest.mark.parametrize("key_id", ["a" * 1000, "é" * 600, "ed25519:00"])
async def test_revoking_a_key_id_no_key_can_have_is_404(api: httpx.AsyncClient, key_id: str) -> None:
    # A 1000-character id made a workflow id past Temporal's limit: a 500.
    resp = await api.post(f"/v1/trust/keys/{key_id}/revoke", headers=ADMIN)
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found"), resp.text


@pytest.mark.integration
async def test_a_version_as_long_as_a_manifest_allows_is_not_refused_as_too_long(
    api: httpx.AsyncClient,
) -> None:
    # The document allows the manifest's 128 characters; the body model used to stop at 100.
    version = "1.0.0-" + "a" * 122
    resp = await api.post(
        "/v1/tenants/acme/installs", json={"extension": "com.acme.x", "version": version}, headers=ADMIN
    )
    assert (resp.status_code, resp.json()["error"]) == (404, "not_found"), resp.text
