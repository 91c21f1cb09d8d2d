"""`GET|POST /api/ext-debug/stream?extension=NAME[&install=ID][&request=ID][&tail=N]`: a tenant's own
debug events (guest logs, stdout, stderr, runner failures), read from the Redis stream
`{prefix}{tenant}:{extension}` that the runner writes (runner/_debug_redis.py).

Policy, fail-closed, in this order:

    bearer token (401) → tenant: the token's only; a conflicting `tenant`/`tenantId` query parameter
    or tenant header → 403 tenant_mismatch → `extension` given and well-formed (400) → scope
    `ext:debug` (403) → the tenant has an install of it (404 extension_not_available) → the install
    grants `cap:debug.logs` or an operator set `installs.debug_enabled` (403) → a session slot (503)
    → the audit row is written (503 when it cannot be)

The Redis key is built from the caller's tenant only, so no parameter can reach another tenant's
stream; events are also checked against the tenant and extension once decoded (defence in depth).

GET answers `text/event-stream`: a `session` event, the last `tail` matching events (default 200,
max 2000; none when a reconnecting client sends `Last-Event-ID`, which resumes after that entry),
then live events (XREAD BLOCK), each as an unnamed SSE event whose `id:` is the stream
entry id; `: ping` comments every `debug_heartbeat_seconds`; after `debug_max_session_seconds` a
`session_expired` event ends the stream. Every `debug_heartbeat_seconds` the token, its scope and the
install's grant are re-checked (api.gateway.debug_access); a failed check ends the stream with a
`session_end` event naming why. When Redis fails, one `warning` event
`{"code": "debug_stream_unavailable"}` is sent, reads are retried with backoff, and a `resumed` event
follows once Redis answers again (from the last entry id seen, so nothing written meanwhile is lost).

POST `{"lastId": "...", "session": "..."}` is the polling fallback: at most 100 events after lastId
(without lastId: the tail), answered as `{events, lastId, session}`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from api.gateway.auth import TENANT_HEADERS, Caller
from api.gateway.debug_access import AccessEnded, recheck
from api.gateway.debug_sessions import DebugSessions, SessionStart
from api.gateway.errors import Forbidden, NotFound
from api.gateway.http import error_body
from api.gateway.resources import Resources
from core.errors import ExtplaneError, InvalidInput, Unavailable
from core.settings import ApiSettings
from registry.read_debug import DEBUG_CAPABILITY, debug_install
from schema.errors import ErrorCode
from schema.manifest import NAME_RE

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH = "/api/ext-debug/stream"
_NAME = re.compile(NAME_RE)
_ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
MAX_FILTER_CHARS = 200
MAX_POLL_BODY = 4096
POLL_COUNT = 100
READ_COUNT = 100
# XREAD BLOCK slice: bounds how late a heartbeat, the session limit or a shutdown is noticed.
MAX_BLOCK_S = 1.0
UNAVAILABLE = "debug_stream_unavailable"
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


@dataclass(frozen=True, kw_only=True)
class Viewer:
    """An authorized viewing request: whose stream, which filters."""

    caller: Caller
    extension: str
    install_id: str
    key: str
    install_filter: str | None
    request_filter: str | None
    tail: int
    resume_from: str | None = None  # Last-Event-ID of a reconnecting EventSource: no replay then

    @property
    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tail": self.tail}
        if self.install_filter:
            out["install"] = self.install_filter
        if self.request_filter:
            out["request"] = self.request_filter
        return out

    def matches(self, event: dict[str, Any]) -> bool:
        if event.get("tenant") != self.caller.tenant_id or event.get("extension") != self.extension:
            return False
        if self.install_filter and str(event.get("install_id", "")).lower() != self.install_filter:
            return False
        return not (self.request_filter and str(event.get("request_id", "")).lower() != self.request_filter)


def decode(entry_id: bytes | str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A stream entry (runner/_debug_redis.encode) as the JSON event clients see."""
    f = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    try:
        ts = float(f.get("ts", "0"))
    except ValueError:
        ts = 0.0
    return {
        "id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        "ts": ts,
        "level": f.get("level", ""),
        "stream": f.get("stream", ""),
        "tenant": f.get("tenant", ""),
        "extension": f.get("extension", ""),
        "install_id": f.get("install_id", ""),
        "request_id": f.get("request_id", ""),
        "version": f.get("version", ""),
        "content_hash": f.get("content_hash", ""),
        "message": f.get("message", ""),
        "truncated": f.get("truncated") == "1",
    }


def sse_frame(data: dict[str, Any], *, event: str | None = None, entry_id: str | None = None) -> bytes:
    lines = []
    if entry_id is not None:
        lines.append(f"id: {entry_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


class DebugStream:
    """The debug-stream route of one gateway process (its Redis client and its session count)."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.active = 0
        self._redis: aioredis.Redis | None = None

    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            block = min(MAX_BLOCK_S, self.settings.debug_heartbeat_seconds)
            self._redis = aioredis.Redis.from_url(
                self.settings.debug_redis,
                socket_connect_timeout=2.0,
                socket_timeout=block + 5.0,  # above the XREAD BLOCK time
                max_connections=self.settings.debug_max_sessions + 8,
                client_name="extplane-gateway-debug",
            )
        return self._redis

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def __call__(self, res: Resources | None, scope: Scope, receive: Receive, send: Send) -> None:
        rid = uuid.uuid4().hex
        started = False

        async def start(status: int, headers: list[tuple[bytes, bytes]]) -> None:
            nonlocal started
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})

        try:
            if res is None:
                raise Unavailable("gateway starting")
            if scope["method"] == "GET":
                await self._sse(res, scope, receive, send, start, rid)
            elif scope["method"] == "POST":
                await self._poll(res, scope, receive, start, send, rid)
            else:
                raise InvalidInput("use GET (SSE) or POST (polling)")
        except ExtplaneError as err:
            if started:
                raise
            await _json(start, send, err.http_status, error_body(err.code.value, err.message, rid), rid)
        except Exception:
            if started:
                raise
            log.exception("debug_stream_internal_error", request_id=rid)
            body = error_body(ErrorCode.INTERNAL.value, "internal gateway error", rid)
            await _json(start, send, 500, body, rid)

    # -- authorization --------------------------------------------------------------------------------

    async def _authorize(self, res: Resources, scope: Scope) -> Viewer:
        authorization: bytes | None = None
        claims: list[bytes] = []
        resume: str | None = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key in TENANT_HEADERS:
                claims.append(value)
            elif key == b"last-event-id":
                resume = value.decode("latin-1").strip()
        caller = await res.auth.authenticate(authorization, claims)
        query: dict[str, list[str]] = parse_qs(
            scope["query_string"].decode("latin-1"), keep_blank_values=True
        )

        def one(*names: str) -> str | None:
            for name in names:
                values = query.get(name)
                if values:
                    return values[-1].strip()
            return None

        # The tenant is the token's; a tenant parameter may only repeat it (the reference system let
        # `tenantId` select any tenant's stream).
        for name in ("tenant", "tenantId", "tenant_id"):
            for value in query.get(name, []):
                if value.strip() and value.strip() != caller.tenant_id:
                    raise Forbidden(
                        "tenant parameter does not match the token's tenant", code=ErrorCode.TENANT_MISMATCH
                    )
        extension = one("extension", "extensionId") or ""
        if not _NAME.match(extension):
            raise InvalidInput("query parameter `extension` must name an extension (e.g. com.acme.hello)")
        if not caller.allows("ext:debug"):
            raise Forbidden("token lacks scope ext:debug")
        install = await debug_install(res.pool, caller.tenant_id, extension)
        if install is None:
            raise NotFound(
                f"extension {extension!r} is not installed", code=ErrorCode.EXTENSION_NOT_AVAILABLE
            )
        if not install.debuggable:
            raise Forbidden(
                f"the install of {extension} does not grant {DEBUG_CAPABILITY} and debugging is not "
                "enabled for it by an operator"
            )
        install_filter = one("install", "installId")
        request_filter = one("request", "requestId")
        for value in (install_filter, request_filter):
            if value is not None and len(value) > MAX_FILTER_CHARS:
                raise InvalidInput(f"filters are at most {MAX_FILTER_CHARS} characters")
        raw_tail = one("tail")
        tail = self.settings.debug_tail_default
        if raw_tail:
            if not raw_tail.isdigit():
                raise InvalidInput("tail must be a non-negative integer")
            tail = int(raw_tail)
        tail = min(tail, self.settings.debug_tail_max)
        if resume is not None and not _ENTRY_ID.match(resume):
            raise InvalidInput("Last-Event-ID must be a stream entry id such as 1732222222000-0")
        return Viewer(
            caller=caller,
            extension=extension,
            install_id=install.install_id,
            key=f"{self.settings.debug_stream_prefix}{caller.tenant_id}:{extension}",
            install_filter=install_filter.lower() if install_filter else None,
            request_filter=request_filter.lower() if request_filter else None,
            tail=tail,
            resume_from=resume,
        )

    def _session(self, viewer: Viewer, transport: str, rid: str) -> SessionStart:
        return SessionStart(
            caller=viewer.caller,
            extension=viewer.extension,
            install_id=viewer.install_id,
            filters=viewer.filters,
            transport=transport,
            request_id=rid,
        )

    # -- reads ----------------------------------------------------------------------------------------

    async def _tail(self, viewer: Viewer) -> tuple[list[dict[str, Any]], str]:
        """The last `tail` matching events, oldest first, and the id to follow from."""
        client = self.redis()
        filtered = viewer.install_filter or viewer.request_filter
        count = (self.settings.debug_tail_max if filtered else viewer.tail) or 1
        entries: Any = await client.xrevrange(viewer.key, count=count)
        if not entries:
            return [], "0-0"
        last_id = entries[0][0].decode()
        events = [e for e in (decode(i, f) for i, f in reversed(entries)) if viewer.matches(e)]
        return (events[-viewer.tail :] if viewer.tail else []), last_id

    async def _after(
        self, viewer: Viewer, last_id: str, *, block_ms: int | None
    ) -> tuple[list[dict[str, Any]], str]:
        client = self.redis()
        reply: Any = await client.xread({viewer.key: last_id}, count=READ_COUNT, block=block_ms)
        events: list[dict[str, Any]] = []
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                event = decode(entry_id, fields)
                last_id = event["id"]
                if viewer.matches(event):
                    events.append(event)
        return events, last_id

    # -- GET: SSE -------------------------------------------------------------------------------------

    async def _sse(
        self,
        res: Resources,
        scope: Scope,
        receive: Receive,
        send: Send,
        start: Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None]],
        rid: str,
    ) -> None:
        viewer = await self._authorize(res, scope)
        if self.active >= self.settings.debug_max_sessions:
            raise Unavailable("too many debug sessions on this gateway; retry later")
        sessions = DebugSessions(res.pool)
        session_id = await sessions.start(self._session(viewer, "sse", rid))
        self.active += 1
        res.metrics.debug_active.inc()
        sent = [0]
        reason = "error"
        log.info(
            "debug_session_started",
            session_id=session_id,
            tenant=viewer.caller.tenant_id,
            extension=viewer.extension,
            subject=viewer.caller.subject,
            operator=viewer.caller.operator,
        )
        try:
            await start(
                200,
                [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache, no-transform"),
                    (b"x-accel-buffering", b"no"),
                    (b"x-request-id", rid.encode()),
                    (b"x-debug-session", session_id.encode()),
                ],
            )
            check = functools.partial(recheck, res, viewer.caller, viewer.extension, viewer.install_id)
            follow = asyncio.create_task(self._follow(viewer, send, session_id, sent, check))
            gone = asyncio.create_task(_disconnected(receive))
            done, _ = await asyncio.wait({follow, gone}, return_when=asyncio.FIRST_COMPLETED)
            if follow in done:
                gone.cancel()
                reason = follow.result()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                follow.cancel()
                reason = "client_closed"
                try:
                    await follow
                except (asyncio.CancelledError, Exception):
                    pass
        except OSError:
            reason = "client_closed"  # the server reports a vanished client on send
        finally:
            self.active -= 1
            res.metrics.debug_active.dec()
            res.metrics.debug_sessions.labels("sse", reason).inc()
            res.metrics.debug_events.labels("sse").inc(sent[0])
            await sessions.finish(session_id, events_sent=sent[0], reason=reason)
            log.info("debug_session_ended", session_id=session_id, reason=reason, events_sent=sent[0])

    async def _follow(
        self,
        viewer: Viewer,
        send: Send,
        session_id: str,
        sent: list[int],
        check: Callable[[], Awaitable[AccessEnded | None]],
    ) -> str:
        """Replay, then follow, until the session limit, a shutdown or a failed access re-check (every
        heartbeat interval, whether or not events flow); returns the end reason."""
        s = self.settings
        deadline = time.monotonic() + s.debug_max_session_seconds
        last_write = time.monotonic()
        next_check = last_write + s.debug_heartbeat_seconds

        async def write(chunk: bytes) -> None:
            nonlocal last_write
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            last_write = time.monotonic()

        async def deliver(events: list[dict[str, Any]]) -> None:
            for event in events:
                await write(sse_frame(event, entry_id=event["id"]))
                sent[0] += 1

        await write(
            sse_frame(
                {
                    "session": session_id,
                    "tenant": viewer.caller.tenant_id,
                    "extension": viewer.extension,
                    "filters": viewer.filters,
                    "max_seconds": s.debug_max_session_seconds,
                },
                event="session",
            )
        )
        last_id: str | None = viewer.resume_from
        down = False
        backoff = 0.2
        block_s = min(MAX_BLOCK_S, s.debug_heartbeat_seconds)
        while True:
            if shutting_down():
                await write(sse_frame({"code": "server_shutdown"}, event="session_end"))
                return "server_shutdown"
            left = deadline - time.monotonic()
            if left <= 0:
                await write(
                    sse_frame(
                        {"code": "session_expired", "max_seconds": s.debug_max_session_seconds},
                        event="session_expired",
                    )
                )
                return "session_expired"
            if time.monotonic() >= next_check:
                ended = await check()
                next_check = time.monotonic() + s.debug_heartbeat_seconds
                if ended is not None:
                    log.info("debug_session_access_ended", session_id=session_id, code=ended.code)
                    await write(
                        sse_frame({"code": ended.code, "message": ended.message}, event="session_end")
                    )
                    return ended.end_reason
            try:
                if last_id is None:
                    events, last_id = await self._tail(viewer)
                else:
                    block_ms = max(1, int(min(block_s, left) * 1000))
                    events, last_id = await self._after(viewer, last_id, block_ms=block_ms)
            except REDIS_ERRORS as exc:
                if not down:
                    down = True
                    log.warning("debug_stream_redis_unavailable", error=type(exc).__name__)
                    await write(
                        sse_frame(
                            {
                                "code": UNAVAILABLE,
                                "message": "the debug stream's Redis is unreachable; retrying. Calls "
                                "keep working; events written meanwhile are buffered by the runner.",
                                "retry_in_s": backoff,
                            },
                            event="warning",
                        )
                    )
                await asyncio.sleep(max(0.0, min(backoff, deadline - time.monotonic())))
                backoff = min(backoff * 2, s.debug_retry_max_seconds)
            else:
                if down:
                    down = False
                    backoff = 0.2
                    await write(sse_frame({"code": "debug_stream_resumed"}, event="resumed"))
                await deliver(events)
            if time.monotonic() - last_write >= s.debug_heartbeat_seconds:
                await write(b": ping\n\n")

    # -- POST: polling --------------------------------------------------------------------------------

    async def _poll(
        self,
        res: Resources,
        scope: Scope,
        receive: Receive,
        start: Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None]],
        send: Send,
        rid: str,
    ) -> None:
        viewer = await self._authorize(res, scope)
        raw = await _read_body(receive, MAX_POLL_BODY)
        try:
            doc = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidInput('the body must be JSON: {"lastId": "..."}') from None
        if not isinstance(doc, dict):
            raise InvalidInput("the body must be a JSON object")
        last_id = doc.get("lastId")
        session = doc.get("session")
        if last_id is not None and (not isinstance(last_id, str) or not _ENTRY_ID.match(last_id)):
            raise InvalidInput("lastId must be a stream entry id such as 1732222222000-0")
        if session is not None and not isinstance(session, str):
            raise InvalidInput("session must be a string")
        warning: dict[str, str] | None = None
        events: list[dict[str, Any]] = []
        try:
            if last_id is None:
                events, last_id = await self._tail(viewer)
            else:
                events, last_id = await self._after(viewer, last_id, block_ms=None)
                events = events[:POLL_COUNT]
        except REDIS_ERRORS as exc:
            log.warning("debug_stream_redis_unavailable", error=type(exc).__name__)
            warning = {"code": UNAVAILABLE, "message": "the debug stream's Redis is unreachable"}
            last_id = last_id or "0-0"
        session_id = await DebugSessions(res.pool).poll(
            self._session(viewer, "poll", rid), session, events_sent=len(events)
        )
        res.metrics.debug_sessions.labels("poll", "poll" if warning is None else "redis_unavailable").inc()
        res.metrics.debug_events.labels("poll").inc(len(events))
        body: dict[str, Any] = {"events": events, "lastId": last_id, "session": session_id}
        if warning is not None:
            body["warning"] = warning
        await _json(start, send, 200, json.dumps(body, separators=(",", ":")).encode(), rid)


def shutting_down() -> bool:
    """uvicorn got SIGTERM/SIGINT. It waits for open responses before it stops, so an endless stream
    must notice and end itself. The running Server is found through its SIGTERM handler (a bound
    method), as sse-starlette does; unlike importing sse-starlette, this patches nothing in uvicorn."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"the polling body is at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _json(
    start: Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None]],
    send: Send,
    status: int,
    body: bytes,
    rid: str,
) -> None:
    await start(
        status,
        [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"x-request-id", rid.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    await send({"type": "http.response.body", "body": body})
