"""The tenant-facing gateway: `ANY /api/ext/{name}/{path}`, `GET /healthz`, `GET /metrics`.

A plain ASGI callable, not FastAPI or a Starlette router: the hot path is one route, and TOOLCHAIN.md
measured framework overhead as the first thing that decides this hop's speed (bench/gateway.py shows
the numbers). Per call, in this order and fail-closed:

    bearer token → tenant (the token's only) → active install → declared endpoint → scope
    → rate limit (one Redis round trip) → body (≤ max_body_bytes) → one keep-alive hop to the runner

Tokens and installs come from in-process caches (no Postgres query in the steady state); the
execution_log row is queued and written in batches after the answer is sent.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.gateway.auth import TENANT_HEADERS, Caller
from api.gateway.debug_stream import PATH as DEBUG_PATH
from api.gateway.debug_stream import DebugStream
from api.gateway.errors import (
    Forbidden,
    NotFound,
    RateLimited,
    RunnerBusy,
    outcome_of,
)
from api.gateway.execlog import ExecRow
from api.gateway.http import (
    IDEMPOTENCY_KEY,
    HandlerAnswer,
    error_body,
    failed_run_fuel,
    forward_headers,
    map_runner_reply,
    read_body,
)
from api.gateway.paths import has_dot_segment
from api.gateway.proxy import ProxyVariant
from api.gateway.resources import Resources
from api.gateway.ui import UiPages, is_ui_path
from core.errors import ExtplaneError, InvalidInput
from core.logging import configure_logging
from core.settings import ApiSettings
from registry.envelope import CallFields
from schema.errors import ErrorCode
from schema.manifest import NAME_RE

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = b"/api/ext/"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
_NAME = re.compile(NAME_RE)
MAX_PATH = 2048
MAX_QUERY = 8192


class _Call:
    """What is known about one call so far: the execution_log row is built from it at the end."""

    __slots__ = ("caller", "endpoint", "extension", "fuel_consumed", "install_id", "method", "version")

    def __init__(self, method: str) -> None:
        self.method = method
        self.caller: Caller | None = None
        self.extension = ""
        self.install_id: str | None = None
        self.version: str | None = None
        self.endpoint: str | None = None
        self.fuel_consumed: int | None = None  # stays None unless a guest ran


class GatewayApp:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.resources: Resources | None = None
        self.debug = DebugStream(settings)
        self.ui = UiPages(settings)
        self._proxy = ProxyVariant(self.ui)

    async def startup(self) -> None:
        self.resources = await Resources.open(self.settings)

    async def shutdown(self) -> None:
        await self.debug.aclose()
        await self.ui.aclose()
        if self.resources is not None:
            await self.resources.close()
            self.resources = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/api/ext/"):
                await self._ext(scope, receive, send)
            elif path.startswith("/api/ext-proxy/"):
                await self._ext(scope, receive, send, self._proxy)
            elif is_ui_path(path):
                await self.ui.serve(self.resources, scope, receive, send)
            elif path == DEBUG_PATH:
                await self.debug(self.resources, scope, receive, send)
            elif path == "/healthz":
                await self._healthz(send)
            elif path == "/metrics":
                await self._metrics(send)
            else:
                rid = uuid.uuid4().hex
                await _send(send, 404, _json_headers(rid), error_body("not_found", "no such route", rid))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("gateway_startup_failed", error=str(exc))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _ext(
        self, scope: Scope, receive: Receive, send: Send, variant: ProxyVariant | None = None
    ) -> None:
        started = time.perf_counter()
        res = self.resources
        rid = uuid.uuid4().hex
        call = _Call(scope["method"])
        if res is None:
            await _send(send, 503, _json_headers(rid), error_body("internal", "gateway starting", rid))
            return
        try:
            answer = await self._handle(res, scope, receive, call, rid, variant)
            status, outcome = answer.status, "ok" if answer.status < 400 else "handler_error"
            headers = [*answer.headers, (b"x-request-id", rid.encode())]
            body = answer.body
        except ExtplaneError as err:
            status, outcome = err.http_status, outcome_of(err)
            headers = _json_headers(rid)
            if isinstance(err, RateLimited | RunnerBusy):
                headers.append((b"retry-after", str(err.retry_after_s).encode()))
            body = error_body(err.code.value, err.message, rid)
        except Exception:
            log.exception("gateway_internal_error", request_id=rid)
            status, outcome = 500, "error"
            headers = _json_headers(rid)
            body = error_body(ErrorCode.INTERNAL.value, "internal gateway error", rid)
        await _send(send, status, headers, b"" if call.method == "HEAD" else body, length=len(body))
        elapsed = time.perf_counter() - started
        res.metrics.requests.labels(str(status), outcome).inc()
        res.metrics.duration.observe(elapsed)
        if call.caller is not None:
            res.execlog.submit(
                ExecRow(
                    request_id=rid,
                    tenant_id=call.caller.tenant_id,
                    extension_name=call.extension[:200],
                    version=call.version,
                    install_id=uuid.UUID(call.install_id) if call.install_id else None,
                    method=call.method[:16],
                    endpoint=call.endpoint,
                    status=status,
                    outcome=outcome,
                    duration_ms=round(elapsed * 1000.0, 3),
                    principal=call.caller.subject,
                    operator=call.caller.operator,
                    fuel_consumed=call.fuel_consumed,
                )
            )

    async def _handle(
        self,
        res: Resources,
        scope: Scope,
        receive: Receive,
        call: _Call,
        rid: str,
        variant: ProxyVariant | None = None,
    ) -> HandlerAnswer:
        authorization: bytes | None = None
        tenant_claims: list[bytes] = []
        idempotency: bytes | None = None
        declared: int | None = None
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        for key, value in raw_headers:
            if key == b"authorization":
                authorization = value
            elif key in TENANT_HEADERS:
                tenant_claims.append(value)
            elif key == b"x-idempotency-key":
                idempotency = value
            elif key == b"content-length":
                declared = int(value) if value.isdigit() else None

        if variant is None:
            caller = await res.auth.authenticate(authorization, tenant_claims)
        else:  # /api/ext-proxy: also the host page's session cookie (api.gateway.proxy)
            caller = await variant.authenticate(res, authorization, tenant_claims, raw_headers)
        call.caller = caller
        if caller.operator:
            res.metrics.operator_calls.inc()
            log.info("operator_call", subject=caller.subject, tenant=caller.tenant_id, request_id=rid)

        raw_path: bytes = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
        if variant is not None:  # __method override, applied before matching and the scope check
            call.method, receive = await variant.prepare(
                scope, receive, declared=declared, limit=self.settings.max_body_bytes
            )
            declared = None
        prefix = PREFIX if variant is None else variant.prefix
        name, _, rest = raw_path[len(prefix) :].decode("latin-1").partition("/")
        call.extension = name
        path = "/" + rest
        install = await res.installs.resolve(caller.tenant_id, name) if _NAME.match(name) else None
        if install is None or not install.active:
            raise NotFound(f"extension {name!r} is not available", code=ErrorCode.EXTENSION_NOT_AVAILABLE)
        call.install_id, call.version = install.install.install_id, install.install.version
        if variant is not None:
            variant.check(install)  # cap:ui.proxy

        method = call.method
        template = install.match(method, path) if method in METHODS and _clean(path) else None
        if template is None:
            raise NotFound(f"{method} {path} is not a declared endpoint", code=ErrorCode.ENDPOINT_NOT_FOUND)
        call.endpoint = template

        scope_needed = "ext:read" if method in READ_METHODS else "ext:write"
        if not caller.allows(scope_needed):
            raise Forbidden(f"token lacks scope {scope_needed}")

        decision = await res.limiter.take(caller.tenant_id, name, rps=install.rps, burst=install.burst)
        if not decision.allowed:
            raise RateLimited("rate limit exceeded", retry_after_s=decision.retry_after_s)

        query = scope["query_string"].decode("latin-1")
        if len(path) > MAX_PATH or len(query) > MAX_QUERY:
            # The envelope's bounds (schema.envelope.HttpCall): refuse here rather than as a 502 later.
            raise InvalidInput(f"path or query string too long (max {MAX_PATH} / {MAX_QUERY} characters)")
        body = await read_body(receive, limit=self.settings.max_body_bytes, declared=declared)
        headers = forward_headers(raw_headers)
        headers.append(("x-request-id", rid))
        if method not in READ_METHODS:
            given = idempotency.decode("latin-1") if idempotency else ""
            headers.append(("x-idempotency-key", given if IDEMPOTENCY_KEY.match(given) else rid))
        fields = CallFields(
            request_id=rid,
            method="GET" if method == "HEAD" else method,
            path=path,
            query=query,
            headers=headers,
            body_b64=base64.b64encode(body),
            user={"id": caller.subject, "kind": "operator" if caller.operator else "token"},
        )
        timeout_ms = min(
            self.settings.gateway_timeout_ms, install.timeout_ms + self.settings.gateway_timeout_grace_ms
        )
        reply = await res.runner.send(install, fields, timeout_s=timeout_ms / 1000.0, tenant=caller.tenant_id)
        if reply.answer is not None:  # co-located: mapped already (api.gateway.colocated)
            call.fuel_consumed = reply.answer.fuel_consumed
            return reply.answer
        try:
            answer = map_runner_reply(reply.status, reply.body)
        except ExtplaneError:
            # A guest that trapped or ran out of fuel or time still burnt fuel; the runner says how much.
            call.fuel_consumed = failed_run_fuel(reply.body)
            raise
        call.fuel_consumed = answer.fuel_consumed
        return answer

    async def _healthz(self, send: Send) -> None:
        res = self.resources
        if res is None:
            await _send(send, 503, _json_headers(uuid.uuid4().hex), b'{"status":"starting"}')
            return
        listening = res.listener.connected.is_set()
        body = b'{"status":"ok","invalidations":' + (b"true" if listening else b"false") + b"}"
        await _send(
            send, 200, [(b"content-type", b"application/json"), (b"cache-control", b"no-store")], body
        )

    async def _metrics(self, send: Send) -> None:
        res = self.resources
        payload = (
            generate_latest(res.metrics.registry) + res.runner.metrics_text() if res is not None else b""
        )
        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"x-request-id", uuid.uuid4().hex.encode()),
        ]
        await _send(send, 200, headers, payload)


def _clean(path: str) -> bool:
    """No `.`/`..` segments, however percent-encoded: a `:param` must never smuggle a traversal."""
    if "." not in path and "%" not in path:
        return True
    return not has_dot_segment(path)


def _json_headers(rid: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"x-request-id", rid.encode()),
    ]


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, length: int | None = None
) -> None:
    headers.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ApiSettings) -> GatewayApp:
    """The gateway ASGI app; its resources (pools, listener, writer) open with the ASGI lifespan."""
    return GatewayApp(settings)


def create_app_from_env() -> GatewayApp:
    """uvicorn factory for `python -m api.gateway` (each worker process builds its own settings)."""
    settings = ApiSettings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return GatewayApp(settings)


__all__ = ["GatewayApp", "create_app", "create_app_from_env"]
