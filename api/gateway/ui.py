"""Extension UIs on the gateway (docs/ui.md): the host page, the ext-ui pass-through and the JS SDK.

    GET  /ext/{name}                 host page embedding the install's UI in a sandboxed iframe
    POST /ext/{name}                 sign-in form (token [+ tenant for a global admin token]) → cookie
    POST /ext/{name}/ticket          bearer → a short-lived `?token=` link to the host page
    GET  /ext-ui/{name}/{hash}/{p}   → the runner's /ext-ui, once (name, hash) is a verified version
    GET  /sdk/js/{file}              the host bridge and the iframe SDK (sdk/js, no build step)

Browser authentication: a signed session cookie `extplane_ui` (HMAC-SHA256 over tenant, subject,
scopes and expiry; `HttpOnly; SameSite=Lax`; `ui_session_ttl_s`). The host page sets it when it is
opened with a bearer token, a sign-in form or a `?token=` ticket (ticket: same format, 60 s, bound to
one extension, usable once; the page then redirects to the clean URL). Each use of a session re-checks
its token (cached like bearer authentication): a revoked or expired token ends its sessions within
the token cache TTL.

The iframe is served through the gateway, so host page and UI share the gateway's origin in URLs —
but the iframe is sandboxed without `allow-same-origin`, so its documents run in an opaque origin:
no cookies, no storage, no access to the host page; the runner's CSP (`connect-src 'none'`,
`frame-ancestors` the gateway) leaves postMessage to the host bridge as its only way out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import structlog

from api.auth import Principal
from api.gateway.auth import TENANT_HEADERS, Caller
from api.gateway.cache import TtlCache
from api.gateway.http import error_body, read_body
from api.gateway.paths import safe_asset_path
from api.gateway.resources import Resources
from api.gateway.resp import RespError
from core.errors import ExtplaneError, Forbidden, NotFound, Unauthorized, Unavailable
from core.settings import ApiSettings
from registry.read import versions_by_hash
from schema.errors import ErrorCode
from schema.manifest import NAME_RE

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk" / "js"
COOKIE = "extplane_ui"
TICKET_TTL_S = 60
_NAME = re.compile(NAME_RE)
_HASH = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_SDK_FILE = re.compile(r"^[a-z0-9-]+\.(js|css)$")
RELAYED = (
    "content-type",
    "etag",
    "cache-control",
    "x-content-type-options",
    "content-security-policy",
    "referrer-policy",
)
HOST_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def is_ui_path(path: str) -> bool:
    return path.startswith(("/ext/", "/ext-ui/", "/sdk/js/"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """`v1.<payload>.<mac>` tokens: HMAC-SHA256 over the base64url JSON payload."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mint(self, caller: Caller, *, kind: str, ttl_s: float, extension: str = "") -> str:
        payload = {
            "k": kind,
            "t": caller.tenant_id,
            "s": caller.subject,
            "sc": sorted(caller.principal.scopes),
            "op": caller.operator,
            "x": int(time.time() + ttl_s),
            "e": extension,
            "n": uuid.uuid4().hex,  # two tickets minted in the same second must still differ (one-time use)
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"v1.{body}.{self._mac(body)}"

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, b"v1." + body.encode(), hashlib.sha256).digest())

    def verify(self, token: str, *, kind: str, extension: str = "") -> Caller | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1" or len(token) > 4096:
            return None
        if not hmac.compare_digest(parts[2], self._mac(parts[1])):
            return None
        try:
            doc = json.loads(_unb64(parts[1]))
            if doc["k"] != kind or doc["e"] != extension or int(doc["x"]) < time.time():
                return None
            scopes = frozenset(str(s) for s in doc["sc"])
            operator = bool(doc["op"])
            tenant = str(doc["t"])
            principal = Principal(
                subject=str(doc["s"]), scopes=scopes, tenant_id=None if operator else tenant
            )
        except (ValueError, KeyError, TypeError):
            return None
        return Caller(principal, tenant, operator=operator)


def _signing_key(settings: ApiSettings) -> bytes:
    secret = settings.ui_session_secret.get_secret_value()
    if not secret:
        # Dev only (ApiSettings refuses an empty one elsewhere; checked again here, where it matters):
        # every runner holds runner_auth, so a key derived from it would let any runner mint sessions.
        if not settings.is_dev:
            raise ValueError("EXT_UI_SESSION_SECRET is required outside dev (UI sessions are signed with it)")
        secret = settings.runner_auth.get_secret_value()
    return hashlib.sha256(b"extplane-ui-session\0" + secret.encode()).digest()


def _cookies(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw_headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                out.setdefault(name, val)
    return out


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class UiPages:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.signer = SessionSigner(_signing_key(settings))
        self._versions: TtlCache[tuple[str, str], dict[str, Any]] = TtlCache(
            ttl_s=settings.ui_version_ttl_s, negative_ttl_s=5.0, max_entries=10_000
        )
        runner = settings.runner_http_url
        if runner.startswith("unix:"):
            transport = httpx.AsyncHTTPTransport(uds=runner.removeprefix("unix:"))
            runner = "http://runner"
        else:
            transport = httpx.AsyncHTTPTransport()
        self._runner = httpx.AsyncClient(
            base_url=runner,
            transport=transport,
            headers={"x-runner-auth": settings.runner_auth.get_secret_value()},
            timeout=10.0,
        )
        self._sdk: dict[str, tuple[bytes, str]] = {}

    async def aclose(self) -> None:
        await self._runner.aclose()

    # -- sessions ---------------------------------------------------------------------------------

    async def session_caller(self, res: Resources, raw_headers: list[tuple[bytes, bytes]]) -> Caller | None:
        """The caller of a valid session cookie whose token is still valid (revoked or expired tokens
        end their sessions within the token cache TTL, not at the cookie's expiry)."""
        token = _cookies(raw_headers).get(COOKIE)
        caller = self.signer.verify(token, kind="session") if token else None
        if caller is None or not await res.auth.authenticator.session_valid(caller.subject):
            return None
        return caller

    @staticmethod
    def same_origin(raw_headers: list[tuple[bytes, bytes]]) -> bool:
        """No `Origin` header, or one whose host:port is this request's `Host` (the scheme is left
        out so that a TLS-terminating proxy in front does not break it)."""
        headers = dict(raw_headers)
        origin = headers.get(b"origin")
        if origin is None:
            return True
        return urlsplit(origin.decode("latin-1")).netloc == headers.get(b"host", b"").decode("latin-1")

    def _set_cookie(self, caller: Caller, scope: Scope) -> tuple[bytes, bytes]:
        ttl = self.settings.ui_session_ttl_s
        value = self.signer.mint(caller, kind="session", ttl_s=ttl)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={value}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}"
        return (b"set-cookie", cookie.encode())

    # -- dispatch ---------------------------------------------------------------------------------

    async def serve(self, res: Resources | None, scope: Scope, receive: Receive, send: Send) -> None:
        rid = uuid.uuid4().hex
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/sdk/js/"):
                await self._sdk_file(path.removeprefix("/sdk/js/"), method, send, rid)
                return
            if res is None:
                raise ExtplaneError("gateway starting")
            if path.startswith("/ext-ui/"):
                await self._ext_ui(res, scope, send, rid)
                return
            name, _, rest = path.removeprefix("/ext/").partition("/")
            if rest == "ticket" and method == "POST":
                await self._ticket(res, scope, name, send, rid)
            elif rest == "" and method in ("GET", "HEAD"):
                await self._host_page(res, scope, name, send, rid)
            elif rest == "" and method == "POST":
                await self._sign_in(res, scope, receive, name, send, rid)
            else:
                raise NotFound("no such route")
        except ExtplaneError as err:
            if isinstance(err, Unauthorized) and _wants_html(scope) and path.startswith("/ext/"):
                body = _sign_in_page(path.removeprefix("/ext/").split("/")[0], err.message).encode()
                headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
                headers += [(b"content-security-policy", HOST_CSP.encode()), (b"x-request-id", rid.encode())]
                await _send(send, 401, headers, body)
                return
            headers = [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"x-request-id", rid.encode()),
            ]
            await _send(send, err.http_status, headers, error_body(err.code.value, err.message, rid))

    # -- /sdk/js ----------------------------------------------------------------------------------

    async def _sdk_file(self, file: str, method: str, send: Send, rid: str) -> None:
        if method not in ("GET", "HEAD") or not _SDK_FILE.match(file) or not (SDK_DIR / file).is_file():
            raise NotFound("no such SDK file")
        cached = self._sdk.get(file)
        if cached is None:
            data = (SDK_DIR / file).read_bytes()
            ctype = "text/javascript; charset=utf-8" if file.endswith(".js") else "text/css; charset=utf-8"
            cached = self._sdk[file] = (data, ctype)
        headers = [
            (b"content-type", cached[1].encode()),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-request-id", rid.encode()),
        ]
        await _send(send, 200, headers, b"" if method == "HEAD" else cached[0])

    # -- /ext-ui pass-through ---------------------------------------------------------------------

    async def verified_version(self, res: Resources, name: str, content_hash: str) -> dict[str, Any] | None:
        """The manifest of (name, hash) if it is a published, verified (not revoked) version."""

        async def load() -> dict[str, Any] | None:
            for record in await versions_by_hash(res.pool, content_hash):
                if record.name == name and record.status == "verified":
                    return record.manifest
            return None

        return await self._versions.get((name, content_hash), load)

    async def _ext_ui(self, res: Resources, scope: Scope, send: Send, rid: str) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise NotFound("no such route")
        raw: bytes = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
        parts = raw.decode("latin-1").split("/", 4)  # "", "ext-ui", name, hash, path
        if len(parts) < 4:
            raise NotFound("no such route")
        name, content_hash = parts[2], parts[3].replace("%3A", ":").replace("%3a", ":")
        if not _HASH.match(content_hash):
            await _send(
                send,
                400,
                [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())],
                error_body("invalid_content_hash", "content hash must be sha256:<64 hex>", rid),
            )
            return
        content_hash = content_hash.lower()
        if not _NAME.match(name) or await self.verified_version(res, name, content_hash) is None:
            raise NotFound("no such extension UI")
        rest = parts[4] if len(parts) > 4 else ""
        if not safe_asset_path(rest):
            # Refused here, not left to the runner: the hop below would normalize `..` away (httpx,
            # RFC 3986) and land on another route of the runner or on another (revoked) hash.
            await _send(
                send,
                400,
                [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())],
                error_body("invalid_path", "invalid UI asset path", rid),
            )
            return
        headers = {}
        for key, value in scope["headers"]:
            if key == b"if-none-match":
                headers["if-none-match"] = value.decode("latin-1")
        try:
            reply = await self._runner.get(f"/ext-ui/{name}/{content_hash}/{rest}", headers=headers)
        except httpx.HTTPError as exc:
            log.warning("ext_ui_runner_failed", error=type(exc).__name__, request_id=rid)
            await _send(
                send,
                502,
                [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())],
                error_body("bad_gateway", "runner unavailable", rid),
            )
            return
        out = [(k.encode(), reply.headers[k].encode("latin-1")) for k in RELAYED if k in reply.headers]
        out.append((b"x-request-id", rid.encode()))
        body = b"" if scope["method"] == "HEAD" or reply.status_code == 304 else reply.content
        status = reply.status_code if reply.status_code in (200, 304, 400, 404) else 502
        await send({"type": "http.response.start", "status": status, "headers": out + _length(body)})
        await send({"type": "http.response.body", "body": body})

    # -- /ext/{name} ------------------------------------------------------------------------------

    async def _authenticate(self, res: Resources, scope: Scope) -> tuple[Caller, bool]:
        """The caller and whether a fresh session cookie should be set."""
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = next((v for k, v in raw if k == b"authorization"), None)
        claims = [v for k, v in raw if k in TENANT_HEADERS]
        if authorization is not None:
            return await res.auth.authenticate(authorization, claims), True
        caller = await self.session_caller(res, raw)
        if caller is None:
            raise Unauthorized("sign in: a bearer token, a UI session or a ?token= ticket is required")
        return caller, False

    async def _host_page(self, res: Resources, scope: Scope, name: str, send: Send, rid: str) -> None:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        ticket = query.get("token", [""])[0]
        if ticket:
            caller = self.signer.verify(ticket, kind="ticket", extension=name)
            if caller is None:
                raise Unauthorized("the ?token= ticket is invalid or expired")
            await self._redeem(res, ticket)
            headers = [
                self._set_cookie(caller, scope),
                (b"location", f"/ext/{quote(name)}".encode()),
                (b"cache-control", b"no-store"),
                (b"referrer-policy", b"no-referrer"),
                (b"x-request-id", rid.encode()),
            ]
            await _send(send, 303, headers, b"")
            return
        caller, fresh = await self._authenticate(res, scope)
        if not caller.allows("ext:read"):
            raise Forbidden("token lacks scope ext:read")
        install = await res.installs.resolve(caller.tenant_id, name) if _NAME.match(name) else None
        if install is None or not install.active:
            raise NotFound(f"extension {name!r} is not available")
        manifest = await self.verified_version(res, name, install.install.content_hash)
        ui = (manifest or {}).get("ui")
        if not isinstance(ui, dict) or ui.get("type") != "iframe":
            raise NotFound(f"extension {name!r} has no iframe UI")
        page = _host_html(
            name=name,
            version=install.install.version,
            content_hash=install.install.content_hash,
            tenant=caller.tenant_id,
        ).encode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"content-security-policy", HOST_CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-request-id", rid.encode()),
        ]
        if fresh:
            headers.append(self._set_cookie(caller, scope))
        await _send(send, 200, headers, b"" if scope["method"] == "HEAD" else page)

    async def _sign_in(
        self, res: Resources, scope: Scope, receive: Receive, name: str, send: Send, rid: str
    ) -> None:
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        if not self.same_origin(raw):
            raise Forbidden("cross-origin sign-in refused")
        form = parse_qs((await read_body(receive, limit=8192, declared=None)).decode("latin-1"))
        token = form.get("token", [""])[0].strip()
        tenant = form.get("tenant", [""])[0].strip()
        caller = await res.auth.authenticate(
            f"Bearer {token}".encode("latin-1"), [tenant.encode("latin-1")] if tenant else []
        )
        headers = [
            self._set_cookie(caller, scope),
            (b"location", f"/ext/{quote(name)}".encode()),
            (b"cache-control", b"no-store"),
            (b"x-request-id", rid.encode()),
        ]
        await _send(send, 303, headers, b"")

    async def _redeem(self, res: Resources, ticket: str) -> None:
        """A ticket opens one session: a link that leaked (history, logs, a shared screen) after its first
        use is worthless. The mark lives in the limiter's Redis, so every gateway sees it; when that
        Redis cannot answer, tickets fail closed (a bearer token or the sign-in form still works)."""
        key = "extplane:ui-ticket:" + hashlib.sha256(ticket.encode()).hexdigest()
        try:
            first = await res.limiter_client.set_nx(key, (TICKET_TTL_S + 5) * 1000)
        except RespError as exc:
            raise Unavailable(
                "cannot check the ticket now; sign in with a token instead", code=ErrorCode.INTERNAL
            ) from exc
        if not first:
            raise Unauthorized("the ?token= ticket was already used; request a new one")

    async def _ticket(self, res: Resources, scope: Scope, name: str, send: Send, rid: str) -> None:
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = next((v for k, v in raw if k == b"authorization"), None)
        caller = await res.auth.authenticate(authorization, [v for k, v in raw if k in TENANT_HEADERS])
        if not _NAME.match(name):
            raise NotFound(f"extension {name!r} is not available")
        token = self.signer.mint(caller, kind="ticket", ttl_s=TICKET_TTL_S, extension=name)
        body = json.dumps(
            {"url": f"/ext/{quote(name)}?token={token}", "token": token, "expires_in": TICKET_TTL_S}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"x-request-id", rid.encode()),
        ]
        await _send(send, 200, headers, body)


def _length(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(len(body)).encode())]


def _wants_html(scope: Scope) -> bool:
    accept = dict(scope["headers"]).get(b"accept", b"")
    return b"text/html" in accept


def _host_html(*, name: str, version: str, content_hash: str, tenant: str) -> str:
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(name)} · extplane</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #f5f6f8; color: #1d2330; }}
header {{ padding: 10px 16px; background: #1d2330; color: #fff; display: flex; gap: 16px; }}
header code {{ color: #9fb3ff; }}
main {{ padding: 16px; }}
iframe {{ width: 100%; height: 200px; border: 1px solid #d5d9e2; border-radius: 6px; background: #fff; }}
</style></head>
<body>
<header><strong>{e(name)}</strong><span>version <code>{e(version)}</code></span>
<span>tenant <code>{e(tenant)}</code></span></header>
<main id="extplane-host" data-extension="{e(name)}" data-content-hash="{e(content_hash)}"
      data-version="{e(version)}" data-tenant="{e(tenant)}"></main>
<script type="module" src="/sdk/js/extplane-host-page.js"></script>
</body></html>
"""


def _sign_in_page(name: str, reason: str) -> str:
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · extplane</title></head>
<body style="font: 14px system-ui, sans-serif; margin: 40px">
<h1>{e(name)}</h1><p>{e(reason)}</p>
<form method="post" action="/ext/{e(quote(name))}">
<p><label>API token <input name="token" type="password" size="50" required></label></p>
<p><label>Tenant (only for a global admin token) <input name="tenant"></label></p>
<p><button type="submit">Open</button></p>
</form></body></html>
"""
