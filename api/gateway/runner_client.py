"""A minimal HTTP/1.1 keep-alive client for the one hop gateway → runner (`POST /v1/execute`).

Why not httpx: the hop is a single request shape to a single trusted peer, and the generic client's
per-request machinery (URL model, header model, transports, pool bookkeeping) cost more than the runner
call itself when measured (bench/gateway.py prints both). Here a request is one pre-formatted write and a
response is a status line, a few headers and a Content-Length body read from an asyncio stream.

A request once written is never sent again: the runner may have executed it (a POST would run twice),
whatever the connection did afterwards, so any failure after the write is a 502. Reuse is kept safe
without resending: connections are pooled LIFO (the warmest first) and dropped once idle for `idle_s`,
well below the runner's keep-alive timeout, so the runner does not close one under a reuse; one the
runner closed anyway (a restart) is seen at EOF and discarded before anything is written. Only opening
a connection may fail over (`RunnerUnreachable`: nothing was sent), and it is bounded by
`connect_timeout_s`.

Load shedding: each client holds at most `max_connections` calls in flight and one tenant at most its
`tenant_share` of them; past either the call is refused at once (`RunnerSaturated`, 503 runner_busy,
or the next runner) instead of queueing in the gateway where the runner's own fairness cannot see it.
`http://host:port` and `unix:/path/to.sock` URLs speak HTTP/1.1 to `POST /v1/execute`;
`frame://host:port` speaks the framed hop (schema.runner_frames) to the runner's EXT_FRAME_PORT: the
same envelope and answer without HTTP on either side, after a challenge handshake that proves the
gateway holds EXT_RUNNER_AUTH without sending it. Pooling, shedding and never-resend are the same.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from api.gateway.errors import BadGateway, HandlerTimeout, RunnerBusy
from api.gateway.http import HandlerAnswer
from registry.envelope import CallFields, PreparedInstall
from schema.runner_frames import (
    ANSWER_HEAD,
    HELLO_OK,
    MAGIC,
    NONCE_BYTES,
    handshake_mac,
    request_frame,
)

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunnerReply:
    status: int
    body: bytes
    # A co-located handler's answer, already mapped (api.gateway.colocated): then `body` is empty.
    answer: HandlerAnswer | None = None


class RunnerHop(Protocol):
    """How the gateway reaches its runners: RunnerPool over the network, or the co-located one
    (api.gateway.colocated) in this process."""

    async def execute(
        self,
        envelope: bytes,
        *,
        request_id: str,
        timeout_s: float,
        tenant: str = "",
        headers: bytes = b"",
    ) -> RunnerReply: ...

    async def send(
        self, install: PreparedInstall, call: CallFields, *, timeout_s: float, tenant: str
    ) -> RunnerReply:
        """One tenant call against `install`: `execute` of its envelope, in whatever form the hop
        carries it."""
        ...

    def metrics_text(self) -> bytes:
        """Prometheus text of a runner in this process; empty for remote ones (they serve their own)."""
        ...

    async def aclose(self) -> None: ...


class RunnerUnreachable(BadGateway):
    """No connection could be opened: the request was never sent, so another runner may take it."""


class RunnerSaturated(RunnerBusy):
    """No connection slot for this call (all in use, or the tenant's share): never sent either."""


class _Conn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class RunnerClient:
    def __init__(
        self,
        url: str,
        *,
        auth: str,
        max_connections: int = 64,
        idle_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        tenant_share: float = 1.0,
    ) -> None:
        self._unix: str | None = None
        self._framed = False
        if url.startswith("unix:"):
            self._unix = url.removeprefix("unix:")
            self._host, self._port, host_header = "", 0, "runner"
        else:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "frame") or not parts.hostname:
                raise ValueError(
                    f"runner URL must be http://host:port, frame://host:port or unix:/path, got {url!r}"
                )
            if parts.scheme == "frame" and parts.port is None:
                raise ValueError(f"a frame:// runner URL needs the runner's EXT_FRAME_PORT, got {url!r}")
            self._framed = parts.scheme == "frame"
            self._host, self._port = parts.hostname, parts.port or 80
            host_header = parts.netloc
        self._secret = auth.encode()
        self._head = (
            "POST /v1/execute HTTP/1.1\r\n"
            f"host: {host_header}\r\n"
            "content-type: application/json\r\n"
            f"x-runner-auth: {auth}\r\n"
        ).encode("latin-1")
        self._idle: list[_Conn] = []
        self._idle_s = idle_s
        self._connect_timeout_s = connect_timeout_s
        self._max = max_connections
        self._tenant_max = max(1, int(tenant_share * max_connections))
        self._in_use = 0
        self._by_tenant: dict[str, int] = {}

    async def execute(
        self,
        envelope: bytes,
        *,
        request_id: str,
        timeout_s: float,
        tenant: str = "",
        headers: bytes = b"",
    ) -> RunnerReply:
        """POST the envelope; RunnerSaturated when no slot is free for `tenant`, BadGateway when the
        runner is unreachable or answers garbage, HandlerTimeout when no full answer arrives within
        `timeout_s`. `headers` are extra pre-formatted `name: value\r\n` lines."""
        held = self._by_tenant.get(tenant, 0)
        if self._in_use >= self._max:
            raise RunnerSaturated("every connection to the runner is in use")
        if held >= self._tenant_max:
            raise RunnerSaturated("the tenant holds its share of the connections to the runner")
        if self._framed:
            payload = request_frame(envelope)  # the request id travels inside the envelope
        else:
            payload = b"".join(
                (
                    self._head,
                    headers,
                    b"x-request-id: ",
                    request_id.encode("latin-1"),
                    b"\r\ncontent-length: ",
                    str(len(envelope)).encode(),
                    b"\r\n\r\n",
                    envelope,
                )
            )
        self._in_use += 1
        self._by_tenant[tenant] = held + 1
        try:
            async with asyncio.timeout(timeout_s):
                conn = self._pooled() or await self._connect()
                return await self._roundtrip(conn, payload)
        except TimeoutError:
            raise HandlerTimeout(f"no answer from the runner within {timeout_s:.1f}s") from None
        finally:
            self._in_use -= 1
            left = self._by_tenant[tenant] - 1
            if left:
                self._by_tenant[tenant] = left
            else:
                del self._by_tenant[tenant]

    def _pooled(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            # EOF or a closing transport: the runner closed it (restart, keep-alive): nothing was sent.
            if (
                now - conn.idle_since < self._idle_s
                and not conn.reader.at_eof()
                and not conn.writer.is_closing()
            ):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._unix is not None:
                    reader, writer = await asyncio.open_unix_connection(self._unix, limit=_MAX_HEAD)
                else:
                    reader, writer = await asyncio.open_connection(self._host, self._port, limit=_MAX_HEAD)
        except TimeoutError as exc:
            raise RunnerUnreachable(
                f"runner unreachable: no connection within {self._connect_timeout_s}s"
            ) from exc
        except OSError as exc:
            raise RunnerUnreachable(f"runner unreachable: {type(exc).__name__}") from exc
        conn = _Conn(reader, writer)
        if self._framed:
            await self._hello(conn)
        return conn

    async def _hello(self, conn: _Conn) -> None:
        """The framed hop's handshake; nothing of a call was sent yet, so failures may fail over,
        except a refusal of our credentials (another runner would refuse them too)."""
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                challenge = await conn.reader.readexactly(len(MAGIC) + NONCE_BYTES)
                if not challenge.startswith(MAGIC):
                    raise BadGateway("runner does not speak the framed hop on this port")
                conn.writer.write(handshake_mac(self._secret, challenge[len(MAGIC) :]))
                verdict = await conn.reader.readexactly(1)
        except TimeoutError as exc:
            conn.close()
            raise RunnerUnreachable(
                f"runner unreachable: no handshake within {self._connect_timeout_s}s"
            ) from exc
        except (asyncio.IncompleteReadError, OSError) as exc:
            conn.close()
            raise RunnerUnreachable(f"runner unreachable: handshake failed ({type(exc).__name__})") from exc
        except BaseException:
            conn.close()
            raise
        if verdict != HELLO_OK:
            conn.close()
            raise BadGateway("runner refused the gateway's credentials (EXT_RUNNER_AUTH differs)")

    async def _roundtrip(self, conn: _Conn, payload: bytes) -> RunnerReply:
        # From the write on, the runner may have executed the request: every failure is final.
        try:
            conn.writer.write(payload)
            if self._framed:
                status, length = ANSWER_HEAD.unpack(await conn.reader.readexactly(ANSWER_HEAD.size))
                if length > _MAX_BODY:
                    raise BadGateway("runner answer too large")
                body, keep_alive = await conn.reader.readexactly(length), True
            else:
                status, body, keep_alive = await _read_http(conn.reader)
        except asyncio.IncompleteReadError as exc:
            conn.close()
            raise BadGateway("runner closed the connection without a full answer") from exc
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise BadGateway(f"runner connection failed: {type(exc).__name__}") from exc
        except asyncio.LimitOverrunError as exc:
            conn.close()
            raise BadGateway("runner answer head too large") from exc
        except BaseException:
            # Cancelled or timed out mid-answer: the stream position is unknown, never reuse it.
            conn.close()
            raise
        if keep_alive:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
        return RunnerReply(status, body)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


class RunnerPool:
    """Several runner processes (`EXT_RUNNER_URL` as a comma-separated list): round robin per call.
    A call that could not be sent to its runner (no connection, or no free slot there) goes to the
    next one; once written, it is never sent anywhere else. The runner scales by processes; this is
    how the gateway uses them."""

    def __init__(
        self,
        urls: list[str],
        *,
        auth: str,
        max_connections: int,
        idle_s: float,
        connect_timeout_s: float = 1.0,
        tenant_share: float = 1.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one runner URL is required")
        self._clients = [
            RunnerClient(
                u,
                auth=auth,
                max_connections=max_connections,
                idle_s=idle_s,
                connect_timeout_s=connect_timeout_s,
                tenant_share=tenant_share,
            )
            for u in urls
        ]
        self._next = 0

    @classmethod
    def from_setting(
        cls,
        value: str,
        *,
        auth: str,
        max_connections: int,
        idle_s: float,
        connect_timeout_s: float = 1.0,
        tenant_share: float = 1.0,
    ) -> RunnerPool:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        return cls(
            urls,
            auth=auth,
            max_connections=max_connections,
            idle_s=idle_s,
            connect_timeout_s=connect_timeout_s,
            tenant_share=tenant_share,
        )

    async def execute(
        self,
        envelope: bytes,
        *,
        request_id: str,
        timeout_s: float,
        tenant: str = "",
        headers: bytes = b"",
    ) -> RunnerReply:
        start = self._next
        self._next = (start + 1) % len(self._clients)
        order = self._clients[start:] + self._clients[:start]
        deadline = time.monotonic() + timeout_s
        for client in order[:-1]:
            try:
                return await client.execute(
                    envelope,
                    request_id=request_id,
                    timeout_s=_left(deadline, timeout_s),
                    tenant=tenant,
                    headers=headers,
                )
            except (RunnerUnreachable, RunnerSaturated):
                continue  # never sent: the next runner may take it
        return await order[-1].execute(
            envelope,
            request_id=request_id,
            timeout_s=_left(deadline, timeout_s),
            tenant=tenant,
            headers=headers,
        )

    async def send(
        self, install: PreparedInstall, call: CallFields, *, timeout_s: float, tenant: str
    ) -> RunnerReply:
        return await self.execute(
            install.encode(call),
            request_id=call.request_id,
            timeout_s=timeout_s,
            tenant=tenant,
            headers=install.runner_headers,
        )

    def metrics_text(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


async def _read_http(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.x answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, length, chunked, keep_alive = _parse_head(head)
    if chunked:
        return status, await _read_chunked(reader), keep_alive
    if length is not None:
        return status, await reader.readexactly(length), keep_alive
    return status, await reader.read(_MAX_BODY), False


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, content-length, chunked, keep-alive) of a response head; BadGateway if malformed."""
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise BadGateway("runner answered something that is not HTTP/1.x")
    try:
        status = int(status_line[1])
        length: int | None = None
        chunked = False
        keep_alive = status_line[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value.strip())
                if not 0 <= length <= _MAX_BODY:
                    raise BadGateway("runner answer too large")
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"connection":
                token = value.strip().lower()
                keep_alive = token == b"keep-alive" if token in (b"close", b"keep-alive") else keep_alive
    except ValueError as exc:
        raise BadGateway("runner answer head is malformed") from exc
    return status, length, chunked, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadGateway("runner answer has a malformed chunk") from exc
        if size == 0:
            await _skip_trailers(reader)
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise BadGateway("runner answer too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


def _left(deadline: float, total_s: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HandlerTimeout(f"no answer from a runner within {total_s:.1f}s")
    return remaining
