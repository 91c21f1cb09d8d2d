"""The gateway's UI routes against the real runner process and Postgres: the host page and its
sign-in schemes, the /ext-ui pass-through (only published, verified, not revoked versions) and
/api/ext-proxy (same policy as /api/ext, plus cap:ui.proxy and the __method override)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from api.auth import token_hash as hash_token
from api.gateway.ui import COOKIE
from tests.gateway.conftest import ADMIN_TOKEN, Gateway, GatewayFactory, eventually, free_port
from tests.gateway.test_policy import assert_error
from tests.ui.conftest import INDEX, UI_FILES, UiRegistry

pytestmark = pytest.mark.integration
NAME = "com.acme.ui"


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def first_line(resp: httpx.Response) -> str:
    return resp.text.split("\n", 1)[0]


def reflected_body(resp: httpx.Response) -> str:
    return resp.text.split("\n\n", 1)[1]


def session_cookie(resp: httpx.Response) -> str:
    header = resp.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    name, _, rest = header.partition("=")
    assert name == COOKIE
    return rest.split(";", 1)[0]


# -- host page ------------------------------------------------------------------------------------


async def test_host_page_embeds_the_install_ui_in_a_sandboxed_iframe(
    gateway: Gateway, ui_registry: UiRegistry
) -> None:
    a = tenant()
    inst = await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read")
    resp = await gateway.call("GET", f"/ext/{NAME}", token)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert f'data-content-hash="{inst.content_hash}"' in resp.text
    assert f'data-tenant="{a}"' in resp.text
    assert '<script type="module" src="/sdk/js/extplane-host-page.js">' in resp.text
    csp = resp.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert resp.headers["cache-control"] == "no-store"
    cookie = session_cookie(resp)
    # The session cookie alone opens the page (what a browser sends on reload).
    again = await gateway.client.get(f"/ext/{NAME}", headers={"cookie": f"{COOKIE}={cookie}"})
    assert again.status_code == 200 and inst.content_hash in again.text
    assert "set-cookie" not in again.headers


async def test_host_page_needs_auth_scope_install_and_ui(gateway: Gateway, ui_registry: UiRegistry) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    assert_error(await gateway.call("GET", f"/ext/{NAME}"), 401, "unauthenticated")
    form = await gateway.call("GET", f"/ext/{NAME}", headers={"accept": "text/html"})
    assert form.status_code == 401 and '<form method="post"' in form.text
    tampered = await gateway.client.get(f"/ext/{NAME}", headers={"cookie": f"{COOKIE}=v1.e30.AAAA"})
    assert_error(tampered, 401, "unauthenticated")
    debug_only = await ui_registry.token(a, "ext:debug")
    assert_error(await gateway.call("GET", f"/ext/{NAME}", debug_only), 403, "forbidden")
    other = await ui_registry.token(tenant(), "ext:read")
    assert_error(await gateway.call("GET", f"/ext/{NAME}", other), 404, "not_found")
    b = tenant()
    await ui_registry.install_ui(b, "com.acme.noui", files={})  # files={} -> no ui/ at all
    token_b = await ui_registry.token(b, "ext:read")
    # A manifest without `ui` cannot be packed with cap:ui.proxy; publish_ui drops both.
    assert_error(await gateway.call("GET", "/ext/com.acme.noui", token_b), 404, "not_found")


async def test_ticket_link_sets_a_session_and_redirects_to_the_clean_url(
    gateway: Gateway, ui_registry: UiRegistry
) -> None:
    a = tenant()
    inst = await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read", "ext:write")
    minted = await gateway.call("POST", f"/ext/{NAME}/ticket", token)
    assert minted.status_code == 200, minted.text
    doc = minted.json()
    assert doc["expires_in"] <= 60 and doc["url"].startswith(f"/ext/{NAME}?token=v1.")
    opened = await gateway.client.get(doc["url"])
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/ext/{NAME}"
    page = await gateway.client.get(f"/ext/{NAME}", headers={"cookie": f"{COOKIE}={session_cookie(opened)}"})
    assert page.status_code == 200 and inst.content_hash in page.text
    # One use only, on any gateway sharing the Redis: a leaked link is worthless after the first open.
    replayed = await gateway.client.get(doc["url"])
    assert_error(replayed, 401, "unauthenticated")
    assert "already used" in replayed.json()["message"]
    again = await gateway.call("POST", f"/ext/{NAME}/ticket", token)
    assert again.json()["token"] != doc["token"]
    assert (await gateway.client.get(again.json()["url"])).status_code == 303
    # A ticket is bound to its extension and is not a session (nor the other way round).
    assert_error(
        await gateway.client.get(f"/ext/com.acme.other?token={doc['token']}"), 401, "unauthenticated"
    )
    cookie_as_ticket = await gateway.client.get(f"/ext/{NAME}?token={session_cookie(opened)}")
    assert_error(cookie_as_ticket, 401, "unauthenticated")
    assert_error(await gateway.call("POST", f"/ext/{NAME}/ticket"), 401, "unauthenticated")


async def test_sign_in_form_sets_a_session(gateway: Gateway, ui_registry: UiRegistry) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read")
    resp = await gateway.client.post(f"/ext/{NAME}", data={"token": token})
    assert resp.status_code == 303 and resp.headers["location"] == f"/ext/{NAME}"
    page = await gateway.client.get(f"/ext/{NAME}", headers={"cookie": f"{COOKIE}={session_cookie(resp)}"})
    assert page.status_code == 200
    # What `extctl demo` suggests: the global admin token acting for one named tenant.
    admin = await gateway.client.post(f"/ext/{NAME}", data={"token": ADMIN_TOKEN, "tenant": a})
    assert admin.status_code == 303
    as_admin = await gateway.client.get(
        f"/ext/{NAME}", headers={"cookie": f"{COOKIE}={session_cookie(admin)}"}
    )
    assert as_admin.status_code == 200 and f'data-tenant="{a}"' in as_admin.text
    no_tenant = await gateway.client.post(f"/ext/{NAME}", data={"token": ADMIN_TOKEN})
    assert_error(no_tenant, 403, "forbidden")
    bad = await gateway.client.post(f"/ext/{NAME}", data={"token": "ext_wrong"})
    assert_error(bad, 401, "unauthenticated")
    cross = await gateway.client.post(
        f"/ext/{NAME}", data={"token": token}, headers={"origin": "https://evil.example"}
    )
    assert_error(cross, 403, "forbidden")


async def test_sdk_files_are_served(gateway: Gateway) -> None:
    for file in ("extplane-bridge.js", "extplane-iframe.js", "extplane-host-page.js"):
        resp = await gateway.client.get(f"/sdk/js/{file}")
        assert resp.status_code == 200, file
        assert resp.headers["content-type"].startswith("text/javascript")
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert (await gateway.client.get("/sdk/js/../../core/settings.py")).status_code == 404
    assert (await gateway.client.get("/sdk/js/nope.js")).status_code == 404


# -- /ext-ui pass-through -------------------------------------------------------------------------


async def test_ext_ui_serves_verified_versions_only(
    gateway_factory: GatewayFactory, ui_registry: UiRegistry
) -> None:
    gateway = await gateway_factory(ui_version_ttl_s=0.0)
    digest, version_id = await ui_registry.publish_ui(NAME)
    assert version_id is not None
    resp = await gateway.client.get(f"/ext-ui/{NAME}/{digest}/index.html")
    assert resp.status_code == 200 and resp.content == INDEX
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert resp.headers["x-content-type-options"] == "nosniff"
    csp = resp.headers["content-security-policy"]
    assert "connect-src 'none'" in csp and "frame-ancestors " in csp
    js = await gateway.client.get(f"/ext-ui/{NAME}/{digest}/app.js")
    assert js.content == UI_FILES["app.js"] and "content-security-policy" not in js.headers
    cached = await gateway.client.get(
        f"/ext-ui/{NAME}/{digest}/app.js", headers={"if-none-match": js.headers["etag"]}
    )
    assert cached.status_code == 304 and cached.headers["etag"] == js.headers["etag"]
    spa = await gateway.client.get(f"/ext-ui/{NAME}/{digest}/some/route")
    assert spa.status_code == 200 and spa.content == INDEX
    assert (await gateway.client.get(f"/ext-ui/{NAME}/{digest}/%2e%2e/manifest.json")).status_code == 400
    # Stored but never published, or published under another name: 404.
    unpublished, _ = await ui_registry.publish_ui("com.acme.ghost", register=False)
    assert (await gateway.client.get(f"/ext-ui/com.acme.ghost/{unpublished}/index.html")).status_code == 404
    assert (await gateway.client.get(f"/ext-ui/com.acme.other/{digest}/index.html")).status_code == 404
    await ui_registry.revoke(version_id)
    assert (await gateway.client.get(f"/ext-ui/{NAME}/{digest}/index.html")).status_code == 404
    bad = await gateway.client.get(f"/ext-ui/{NAME}/sha256:xyz/index.html")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_content_hash"


async def test_ext_ui_of_a_revoked_version_is_404(gateway: Gateway, ui_registry: UiRegistry) -> None:
    digest, version_id = await ui_registry.publish_ui(NAME, version_status="revoked")
    assert (await gateway.client.get(f"/ext-ui/{NAME}/{digest}/index.html")).status_code == 404


# -- /api/ext-proxy -------------------------------------------------------------------------------


async def test_ext_proxy_routes_like_api_ext_and_requires_ui_proxy(
    gateway: Gateway, ui_registry: UiRegistry
) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    await ui_registry.install_ui(a, "com.acme.nocap", caps=())
    token = await ui_registry.token(a, "ext:read", "ext:write")
    resp = await gateway.call("POST", f"/api/ext-proxy/{NAME}/reflect/items/7?x=1", token, content=b"hi")
    assert resp.status_code == 200, resp.text
    assert first_line(resp) == "POST /reflect/items/7?x=1"
    assert reflected_body(resp) == "hi"
    denied = await gateway.call("POST", "/api/ext-proxy/com.acme.nocap/reflect/items/7", token)
    assert_error(denied, 403, "forbidden")
    assert "cap:ui.proxy" in denied.json()["message"]
    # The same policy as /api/ext: undeclared endpoints, unknown extensions, no token.
    assert_error(await gateway.call("GET", f"/api/ext-proxy/{NAME}/nope", token), 404, "endpoint_not_found")
    missing = await gateway.call("GET", "/api/ext-proxy/com.acme.missing/x", token)
    assert_error(missing, 404, "extension_not_available")
    assert_error(await gateway.call("GET", f"/api/ext-proxy/{NAME}/reflect/status"), 401, "unauthenticated")


async def test_method_override_by_query_and_json_field(gateway: Gateway, ui_registry: UiRegistry) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read", "ext:write")
    url = f"/api/ext-proxy/{NAME}/reflect/items/3"
    by_query = await gateway.call("POST", url + "?__method=delete&keep=1", token)
    assert by_query.status_code == 200, by_query.text
    assert first_line(by_query) == "DELETE /reflect/items/3?keep=1"
    by_field = await gateway.call("POST", url, token, json={"__method": "PUT", "a": 1})
    assert first_line(by_field).startswith("PUT /reflect/items/3")
    assert reflected_body(by_field) == '{"a":1}'
    as_get = await gateway.call(
        "POST", f"/api/ext-proxy/{NAME}/reflect/status?__method=GET", token, content=b"dropped"
    )
    assert first_line(as_get).startswith("GET /reflect/status")
    assert reflected_body(as_get) == ""
    assert_error(await gateway.call("POST", url + "?__method=TRACE", token), 400, "invalid_request")
    # The override is what the scope check sees: a read-only token cannot write through it.
    reader = await ui_registry.token(a, "ext:read")
    assert_error(await gateway.call("GET", url + "?__method=POST", reader), 403, "forbidden")


async def test_ext_proxy_with_the_ui_session_cookie(gateway: Gateway, ui_registry: UiRegistry) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read", "ext:write")
    cookie = session_cookie(await gateway.call("GET", f"/ext/{NAME}", token))
    url = f"/api/ext-proxy/{NAME}/reflect/items/1"
    base = {"cookie": f"{COOKIE}={cookie}"}
    ok = await gateway.client.post(url, headers={**base, "x-extplane-ui": "1"}, content=b"x")
    assert ok.status_code == 200, ok.text
    assert "cookie" not in ok.text.lower().split("\n\n")[0]  # never forwarded to the guest
    assert_error(await gateway.client.post(url, headers=base), 403, "forbidden")
    cross = await gateway.client.post(
        url, headers={**base, "x-extplane-ui": "1", "origin": "https://evil.example"}
    )
    assert_error(cross, 403, "forbidden")
    same = await gateway.client.post(url, headers={**base, "x-extplane-ui": "1", "origin": "http://gateway"})
    assert same.status_code == 200
    # The session is the tenant's: another tenant's extension is not reachable with it.
    assert_error(
        await gateway.client.post(url, headers={**base, "x-extplane-ui": "1", "x-tenant-id": "other"}),
        403,
        "forbidden",
    )


async def test_tickets_fail_closed_when_their_redis_is_down(
    gateway: Gateway, gateway_factory: GatewayFactory, ui_registry: UiRegistry
) -> None:
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read")
    minted = (await gateway.call("POST", f"/ext/{NAME}/ticket", token)).json()
    # Same signing key, but the Redis that records redemptions is unreachable: refuse, never replayable.
    cut_off: Gateway = await gateway_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    resp = await cut_off.client.get(minted["url"])
    assert resp.status_code == 503 and "sign in with a token" in resp.json()["message"], resp.text
    assert (await gateway.client.get(minted["url"])).status_code == 303  # not spent by the refusal


async def test_revoking_the_token_ends_its_ui_sessions(
    gateway_factory: GatewayFactory, ui_registry: UiRegistry
) -> None:
    # A short token cache: the bound on how long a revoked token (and now its sessions) keeps working.
    gw: Gateway = await gateway_factory(gateway_token_ttl_s=0.2)
    a = tenant()
    await ui_registry.install_ui(a, NAME)
    token = await ui_registry.token(a, "ext:read", "ext:write")
    other = await ui_registry.token(a, "ext:read", "ext:write")
    cookie = session_cookie(await gw.call("GET", f"/ext/{NAME}", token))
    kept = session_cookie(await gw.call("GET", f"/ext/{NAME}", other))
    page, proxy = f"/ext/{NAME}", f"/api/ext-proxy/{NAME}/reflect/items/1"
    ui_headers = {"x-extplane-ui": "1"}

    async def with_cookie(value: str, method: str, url: str) -> httpx.Response:
        headers = {"cookie": f"{COOKIE}={value}", **(ui_headers if url == proxy else {})}
        return await gw.client.request(
            method, url, headers=headers, content=b"x" if method == "POST" else None
        )

    assert (await with_cookie(cookie, "GET", page)).status_code == 200
    assert (await with_cookie(cookie, "POST", proxy)).status_code == 200
    await ui_registry.pool.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_hash = $1", hash_token(token)
    )

    async def ended() -> bool:
        return (await with_cookie(cookie, "GET", page)).status_code == 401

    await eventually(ended, deadline_s=30)
    assert_error(await with_cookie(cookie, "POST", proxy), 401, "unauthenticated")
    # Only that token's sessions end: another token's session of the same tenant keeps working.
    assert (await with_cookie(kept, "GET", page)).status_code == 200
    assert (await with_cookie(kept, "POST", proxy)).status_code == 200
