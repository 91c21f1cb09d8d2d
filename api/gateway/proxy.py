"""`ANY /api/ext-proxy/{name}/{path}`: the handler route of iframe UIs (docs/ui.md).

Not a second pipeline: `GatewayApp._handle` runs the very same policy as for `/api/ext` (token →
tenant → active install → declared endpoint → scope → rate limit → body → runner) and calls the three
hooks of `ProxyVariant` at its seams:

* `authenticate` — a bearer token as on `/api/ext`, or the host page's signed session cookie. A
  cookie-authenticated call must carry `x-extplane-ui: 1` (a header a cross-site form or navigation
  cannot send, so the cookie cannot be ridden) and, when the browser sends `Origin`, come from the
  gateway's own origin.
* `prepare` — the `__method` override: a `__method` query parameter, or a `__method` field of a JSON
  object body, replaces the HTTP method and is removed before the guest sees the call; a GET (or HEAD)
  drops the body. The override is applied before endpoint matching and the scope check, so
  `__method=DELETE` needs `ext:write` like a real DELETE.
* `check` — the install must be granted `cap:ui.proxy` (else 403 forbidden).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from api.gateway.auth import Caller
from api.gateway.errors import Forbidden, Unauthorized
from api.gateway.http import read_body
from core.errors import InvalidInput

if TYPE_CHECKING:
    from api.gateway.resources import Resources
    from api.gateway.ui import UiPages
    from registry.envelope import PreparedInstall

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

PREFIX = b"/api/ext-proxy/"
UI_PROXY = "cap:ui.proxy"
UI_HEADER = b"x-extplane-ui"
OVERRIDE = "__method"
OVERRIDABLE = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


class ProxyVariant:
    prefix = PREFIX

    def __init__(self, pages: UiPages) -> None:
        self._pages = pages

    async def authenticate(
        self,
        res: Resources,
        authorization: bytes | None,
        tenant_claims: list[bytes],
        raw_headers: list[tuple[bytes, bytes]],
    ) -> Caller:
        if authorization is not None:
            return await res.auth.authenticate(authorization, tenant_claims)
        caller = await self._pages.session_caller(res, raw_headers)
        if caller is None:
            raise Unauthorized("missing Authorization: Bearer <token> or UI session")
        headers = dict(raw_headers)
        if headers.get(UI_HEADER) != b"1":
            raise Forbidden("a UI-session call must send x-extplane-ui: 1")
        if not self._pages.same_origin(raw_headers):
            raise Forbidden("cross-origin UI-session call refused")
        if {c.decode("latin-1").strip() for c in tenant_claims} - {caller.tenant_id}:
            raise Forbidden("tenant header does not match the session's tenant")
        return caller

    @staticmethod
    def check(install: PreparedInstall) -> None:
        if UI_PROXY not in install.install.granted_capabilities:
            raise Forbidden(f"the extension's install is not granted {UI_PROXY}")

    @staticmethod
    async def prepare(
        scope: MutableMapping[str, Any], receive: Receive, *, declared: int | None, limit: int
    ) -> tuple[str, Receive]:
        """Apply `__method`; returns the effective method and a `receive` that replays the body."""
        method: str = scope["method"]
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        override = [v for k, v in pairs if k == OVERRIDE]
        if override:
            scope["query_string"] = urlencode([(k, v) for k, v in pairs if k != OVERRIDE]).encode()
        body = await read_body(receive, limit=limit, declared=declared)
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if body and content_type.split(b";")[0].strip().lower() == b"application/json":
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and OVERRIDE in doc:
                field = doc.pop(OVERRIDE)
                if not override:
                    override = [field if isinstance(field, str) else ""]
                body = json.dumps(doc, separators=(",", ":")).encode()
        if override:
            method = override[-1].upper()
            if method not in OVERRIDABLE:
                raise InvalidInput(f"__method must be one of {', '.join(sorted(OVERRIDABLE))}")
            scope["method"] = method
        if method in ("GET", "HEAD"):
            body = b""
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return method, replay
