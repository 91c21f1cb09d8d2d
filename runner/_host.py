"""The host side of the WIT world `extplane:extension/runner` (schema/wit/extplane.wit).

Every interface is linked once per process, on the shared linker. Each function looks up the current
invocation (runner._invocation) and checks its grants: an ungranted capability answers the interface's
typed `denied` error, never a trap. Expected failures map to the interface's error cases; an
unexpected exception becomes `internal` where the WIT has that case, and a trap (classified as a host
error) where it does not.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from wasmtime.component import Linker

from runner._adapter import Variant, err, field, ok, record
from runner._egress import EgressClient, EgressError
from runner._invocation import Invocation, current
from runner._secrets import SecretsCache, SecretsUnavailable
from runner._storage import PgStorage, StorageFailure
from schema.capabilities import Capability, wit_interface

log = structlog.get_logger(__name__)
MAX_FETCH_BODY = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class HostServices:
    secrets: SecretsCache
    storage: PgStorage | None
    egress: EgressClient
    on_denied: Callable[[str], None]


Impl = Callable[..., Variant]


def _guard(
    cap: Capability, impl: Callable[..., Variant], *, internal: str | None, on_denied: Callable[[str], None]
) -> Impl:
    def host_fn(_store: Any, *args: Any) -> Variant:
        inv = current()
        if cap not in inv.caps:
            inv.denied.append(cap.value)
            on_denied(cap.value)
            return err("denied")
        try:
            return impl(inv, *args)
        except Exception as exc:
            inv.host_failure = exc
            log.exception(
                "host_function_failed", capability=cap.value, request_id=inv.envelope.context.request_id
            )
            if internal is not None:
                return err(internal, f"host error: {type(exc).__name__}")
            raise

    return host_fn


def _context(inv: Invocation) -> Variant:
    ctx = inv.envelope.context
    config = [record(key=k, value=v) for k, v in sorted(ctx.config.items())]
    return ok(
        record(
            tenant_id=ctx.tenant_id,
            extension=ctx.extension,
            install_id=ctx.install_id,
            version=ctx.version,
            content_hash=ctx.content_hash,
            request_id=ctx.request_id,
            config=config,
        )
    )


def _log_emit(inv: Invocation, level: str, message: str) -> Variant:
    if inv.log_events >= inv.max_log_events:
        return err("rate-limited")
    inv.log_events += 1
    inv.event(level, "log", message)  # type: ignore[arg-type]
    if level == "error":
        inv.guest_reports.append(message[:512])
    ctx = inv.envelope.context
    log.info(
        "guest_log", level=level, tenant=ctx.tenant_id, extension=ctx.extension, request_id=ctx.request_id
    )
    return ok()


def _user(inv: Invocation) -> Variant:
    user = inv.envelope.user
    if user is None:
        return err("not-available")
    return ok(record(id=user.id, email=user.email, name=user.name, kind=user.kind))


def _ui_proxy(_inv: Invocation, _method: str, _route: str, _body: str) -> Variant:
    # Routing back into the extension belongs to the gateway's ext-proxy (a later issue); until then a
    # granted call finds no route, an ungranted one is denied by the guard.
    return err("route-not-found")


def _decode_body(body: str, is_b64: bool) -> bytes:
    if not is_b64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise EgressError("invalid-url", "body-base64 is set but the body is not base64") from None


class _Host:
    def __init__(self, services: HostServices) -> None:
        self.s = services

    def secrets_get(self, inv: Invocation, key: str) -> Variant:
        plain = self._secrets(inv)
        if isinstance(plain, Variant):
            return plain
        return ok(plain[key]) if key in plain else err("missing")

    def secrets_list(self, inv: Invocation) -> Variant:
        plain = self._secrets(inv)
        return plain if isinstance(plain, Variant) else ok(sorted(plain))

    def _secrets(self, inv: Invocation) -> dict[str, str] | Variant:
        sealed = inv.envelope.secrets
        if sealed is None:
            return {}
        try:
            return self.s.secrets.open(sealed, install_id=inv.envelope.context.install_id)
        except SecretsUnavailable as exc:
            inv.event("error", "runner", f"secrets unavailable: {exc}")
            return err("internal", str(exc))

    def fetch(self, inv: Invocation, req: Any) -> Variant:
        try:
            body = _decode_body(field(req, "body"), bool(field(req, "body_base64")))
            if len(body) > MAX_FETCH_BODY:
                return err("too-large")
            asked = int(field(req, "timeout_ms")) / 1000.0
            timeout = inv.remaining_s() if asked <= 0 else min(asked, inv.remaining_s())
            result = self.s.egress.fetch(
                egress=list(inv.envelope.egress),
                method=str(field(req, "method")) or "GET",
                url=str(field(req, "url")),
                headers=[(str(field(h, "name")), str(field(h, "value"))) for h in field(req, "headers")],
                body=body,
                timeout_s=timeout,
            )
        except EgressError as exc:
            inv.event("warn", "runner", f"http fetch refused: {exc.case}: {exc.message}")
            if exc.case in ("timeout", "too-large"):
                return err(exc.case)
            return err(exc.case, exc.message)
        try:
            text, is_b64 = result.body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(result.body).decode(), True
        headers = [record(name=k, value=v) for k, v in result.headers]
        return ok(record(status=result.status, headers=headers, body=text, body_base64=is_b64))

    def _storage(self) -> PgStorage:
        if self.s.storage is None:
            raise StorageFailure("internal", "storage is not configured on this runner")
        return self.s.storage

    def kv_get(self, inv: Invocation, namespace: str, key: str) -> Variant:
        try:
            e = self._storage().get(
                inv.envelope.context.install_id, namespace, key, timeout_s=inv.remaining_s()
            )
        except StorageFailure as exc:
            return err(exc.case, exc.payload)
        return ok(record(key=e.key, value=e.value, revision=e.revision))

    def kv_put(self, inv: Invocation, namespace: str, key: str, value: str, expected: int | None) -> Variant:
        try:
            rev = self._storage().put(
                inv.envelope.context.install_id, namespace, key, value, expected, timeout_s=inv.remaining_s()
            )
        except StorageFailure as exc:
            return err(exc.case, exc.payload)
        return ok(rev)

    def kv_delete(self, inv: Invocation, namespace: str, key: str, expected: int | None) -> Variant:
        try:
            self._storage().delete(
                inv.envelope.context.install_id, namespace, key, expected, timeout_s=inv.remaining_s()
            )
        except StorageFailure as exc:
            return err(exc.case, exc.payload)
        return ok()

    def kv_list(self, inv: Invocation, namespace: str, cursor: str, limit: int) -> Variant:
        try:
            entries, nxt = self._storage().list_page(
                inv.envelope.context.install_id, namespace, cursor, limit, timeout_s=inv.remaining_s()
            )
        except StorageFailure as exc:
            return err(exc.case, exc.payload)
        page = [record(key=e.key, value=e.value, revision=e.revision) for e in entries]
        return ok(record(entries=page, next_cursor=nxt))


def define_host(linker: Linker, services: HostServices) -> None:
    """Link every interface of the world on `linker` (once per process)."""
    host = _Host(services)
    C = Capability
    table: dict[str, list[tuple[str, Capability, Callable[..., Variant], str | None]]] = {
        "context": [("get-context", C.CONTEXT_READ, _context, None)],
        "log": [("emit", C.LOG_EMIT, _log_emit, None)],
        "secrets": [
            ("get", C.SECRETS_GET, host.secrets_get, "internal"),
            ("list-keys", C.SECRETS_GET, host.secrets_list, "internal"),
        ],
        "http": [("fetch", C.HTTP_FETCH, host.fetch, "transport")],
        "storage": [
            ("get", C.STORAGE_KV, host.kv_get, "internal"),
            ("put", C.STORAGE_KV, host.kv_put, "internal"),
            ("delete", C.STORAGE_KV, host.kv_delete, "internal"),
            ("list", C.STORAGE_KV, host.kv_list, "internal"),
        ],
        "user": [("get-user", C.USER_READ, _user, None)],
        "ui-proxy": [("call-route", C.UI_PROXY, _ui_proxy, "internal")],
    }
    with linker.root() as root:
        for interface, funcs in table.items():
            with root.add_instance(wit_interface(interface)) as inst:
                for name, cap, impl, internal in funcs:
                    inst.add_func(name, _guard(cap, impl, internal=internal, on_denied=services.on_denied))
