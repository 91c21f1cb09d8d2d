"""The fail-closed policy order: token → tenant → install → endpoint → scope (→ rate limit)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.gateway.conftest import ADMIN_TOKEN, ECHO, Gateway, Registry

pytestmark = pytest.mark.integration


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == resp.headers["x-request-id"]


async def test_token_is_required_and_checked(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    url = "/api/ext/com.acme.app/reflect/status"
    assert_error(await gateway.call("GET", url), 401, "unauthenticated")
    assert_error(await gateway.call("GET", url, "not-a-token"), 401, "unauthenticated")
    assert_error(
        await gateway.call("GET", url, headers={"authorization": "Basic dXNlcg=="}), 401, "unauthenticated"
    )
    expired = await registry.token(a, "ext:read", expires_in_s=-1)
    assert_error(await gateway.call("GET", url, expired), 401, "unauthenticated")
    revoked = await registry.token(a, "ext:read")
    await registry.pool.execute("UPDATE api_tokens SET revoked_at = now()")
    assert_error(await gateway.call("GET", url, revoked), 401, "unauthenticated")
    good = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", url, good)
    assert resp.status_code == 200, resp.text


async def test_tenant_headers_can_only_repeat_the_tokens_tenant(gateway: Gateway, registry: Registry) -> None:
    a, b = tenant(), tenant()
    await registry.install(a, "com.acme.app")
    await registry.install(b, "com.acme.app", wasm=ECHO)
    token_b = await registry.token(b, "ext:read", "ext:write")
    url = "/api/ext/com.acme.app/reflect/status"
    for header in ("x-tenant-id", "x-extplane-tenant"):
        assert_error(await gateway.call("GET", url, token_b, headers={header: a}), 403, "tenant_mismatch")
    # repeating one's own tenant is fine
    resp = await gateway.call("GET", url, token_b, headers={"x-tenant-id": b, "x-extplane-tenant": b})
    assert resp.status_code == 200


async def test_tenant_b_never_reaches_tenant_a(gateway: Gateway, registry: Registry) -> None:
    a, b = tenant(), tenant()
    await registry.install(a, "com.acme.secret")
    await registry.install(a, "com.acme.shared")
    await registry.install(b, "com.acme.shared", wasm=ECHO)
    token_a = await registry.token(a, "ext:read", "ext:write")
    token_b = await registry.token(b, "ext:read", "ext:write")

    # A's extension that B does not have: not available, whatever B tries.
    url = "/api/ext/com.acme.secret/reflect/items/1"
    assert_error(await gateway.call("POST", url, token_b, content=b"x"), 404, "extension_not_available")
    for guess in ("com.acme.secre", "com.acme.secret.x", "COM.ACME.SECRET", "com.acme.secret%00", "..", "a"):
        resp = await gateway.call("POST", f"/api/ext/{guess}/reflect/items/1", token_b, content=b"x")
        assert resp.status_code == 404, guess

    # Same extension name in both tenants: each token reaches its own tenant's install only.
    url = "/api/ext/com.acme.shared/reflect/items/7"
    reflected = await gateway.call("POST", url, token_a, content=b"ping")
    echoed = await gateway.call("POST", url, token_b, content=b"ping")
    assert reflected.status_code == echoed.status_code == 200
    assert reflected.text.startswith("POST /reflect/items/7?")  # gwguest reflects the request
    assert echoed.text == "ping"  # echo.wasm (B's bundle) only echoes the body


async def test_install_must_be_active(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.off", status="disabled")
    await registry.install(a, "com.acme.quarantined", status="quarantined")
    token = await registry.token(a, "ext:read")
    for name in ("com.acme.off", "com.acme.quarantined", "com.acme.missing"):
        assert_error(
            await gateway.call("GET", f"/api/ext/{name}/reflect/status", token),
            404,
            "extension_not_available",
        )


async def test_only_declared_endpoints_are_routed(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read", "ext:write")
    base = "/api/ext/com.acme.app"
    ok = await gateway.call("POST", f"{base}/reflect/items/42", token, content=b"")
    assert ok.status_code == 200
    root = await gateway.call("GET", f"{base}", token)  # declared "/": routed; the guest itself says 404
    assert (root.status_code, root.text) == (404, "no such route")
    for method, path in [
        ("GET", "/reflect/items/42"),  # declared for POST/PUT/DELETE only
        ("POST", "/reflect/items/42/extra"),  # :param is one segment
        ("POST", "/reflect/items/"),
        ("POST", "/reflect/items//"),
        ("POST", "/reflect/items/%2e%2e"),
        ("POST", "/reflect/items/.."),
        ("GET", "/undeclared"),
        ("PATCH", "/reflect/items/42"),
        ("OPTIONS", "/reflect/status"),
        ("TRACE", "/reflect/status"),
        ("PROPFIND", "/reflect/status"),
    ]:
        resp = await gateway.call(method, base + path, token)
        assert_error(resp, 404, "endpoint_not_found")


async def test_head_is_matched_and_authorized_as_get(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    get = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    head = await gateway.call("HEAD", "/api/ext/com.acme.app/reflect/status", token)
    assert head.status_code == 200
    assert head.content == b""
    assert get.text.startswith("GET /reflect/status?")  # the guest sees GET
    assert int(head.headers["content-length"]) > 0


async def test_scopes(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    reader = await registry.token(a, "ext:read")
    writer = await registry.token(a, "ext:write")
    neither = await registry.token(a, "ext:debug")
    read_url, write_url = "/api/ext/com.acme.app/reflect/status", "/api/ext/com.acme.app/reflect/items/1"
    assert (await gateway.call("GET", read_url, reader)).status_code == 200
    assert_error(await gateway.call("POST", write_url, reader), 403, "forbidden")
    assert (await gateway.call("PUT", write_url, writer)).status_code == 200
    assert_error(await gateway.call("GET", read_url, writer), 403, "forbidden")
    head = await gateway.call("HEAD", read_url, writer)
    assert (head.status_code, head.content) == (403, b"")  # HEAD: same status, no body
    assert int(head.headers["content-length"]) > 0
    assert_error(await gateway.call("DELETE", write_url, neither), 403, "forbidden")
    # Order: install and endpoint are checked before scope.
    assert_error(
        await gateway.call("GET", "/api/ext/com.acme.none/x", neither), 404, "extension_not_available"
    )
    assert_error(await gateway.call("GET", "/api/ext/com.acme.app/x", neither), 404, "endpoint_not_found")


async def test_global_admin_token_impersonates_only_with_a_named_tenant(
    gateway: Gateway, registry: Registry
) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    url = "/api/ext/com.acme.app/reflect/status"
    resp = await gateway.call("GET", url, ADMIN_TOKEN, headers={"x-extplane-tenant": a})
    assert resp.status_code == 200, resp.text
    assert_error(await gateway.call("GET", url, ADMIN_TOKEN), 403, "forbidden")
    for invalid in ("a b", "x:y", "-x", "t" * 129):  # outside schema.tenants' alphabet: no such tenant
        resp = await gateway.call("GET", url, ADMIN_TOKEN, headers={"x-extplane-tenant": invalid})
        assert_error(resp, 403, "forbidden")
        assert "valid tenant id" in resp.json()["message"]
    assert_error(
        await gateway.call("GET", url, ADMIN_TOKEN, headers={"x-extplane-tenant": a, "x-tenant-id": "other"}),
        403,
        "tenant_mismatch",
    )
    global_admin = await registry.token(None, "admin")
    resp = await gateway.call("GET", url, global_admin, headers={"x-extplane-tenant": a})
    assert resp.status_code == 200
    global_reader = await registry.token(None, "ext:read")
    assert_error(
        await gateway.call("GET", url, global_reader, headers={"x-extplane-tenant": a}), 403, "forbidden"
    )
    metrics = (await gateway.client.get("/metrics")).text
    assert "gateway_operator_calls_total 2.0" in metrics
