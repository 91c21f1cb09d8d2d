"""uvicorn's httptools protocol with a bound on the request head: 431 before the head is buffered.

httptools (llhttp) has no header-size limit of its own, and its Python binding grows a header value by
`bytes +=` per received chunk, so one 64 MiB header costs quadratic copying on the event loop: every
other request of the process (their rate-limit round trips included, which then time out as 503
`rate_limiter_unavailable`) waits seconds behind it. uvicorn's h11 protocol has
`h11_max_incomplete_event_size`; this class gives httptools the same bound, read from that very
setting (`python -m api.gateway` sets it from `EXT_GATEWAY_MAX_HEADER_BYTES`).

The bytes of a request head (request line and headers) are counted as they arrive, before the parser
sees them. When the head would outgrow the bound, only what fits is parsed; if the head has not ended
by then the connection is answered 431 `request_header_too_large` and closed. Body bytes are not
counted (the gateway bounds bodies itself, 413). Bytes of a pipelined next request that arrive in the
same read as the end of the previous one are not counted either; a read is at most uvloop's buffer
(256 KiB), so that slack is bounded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from schema.errors import ErrorCode

log = structlog.get_logger(__name__)

DEFAULT_MAX_HEAD_BYTES = 32 * 1024
LINGER_S = 1.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self._in_head = True  # the connection waits for (or is reading) a request head
        self._head_bytes = 0
        self._heads_done = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read before pause_reading took effect: the connection is closing
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Parse only what fits in the bound: either the head ends inside it and the rest is parsed as
        # usual (body, or a pipelined request, itself bounded), or the head is too large and is never
        # buffered whole.
        heads = self._heads_done
        if room > 0:
            self._head_bytes += room
            super().data_received(data[:room])
            if self.transport.is_closing():
                return
        if self._heads_done == heads:
            self._refuse()
            return
        self.data_received(data[room:])

    def on_message_begin(self) -> None:
        self._in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads_done += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _refuse(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head overflowed while an earlier response is still being sent: a 431 would be
            # spliced into that response, so the connection is only closed.
            log.warning("request_head_too_large", limit=self.max_head_bytes, pipelined=True)
            self.transport.close()
            return
        rid = uuid.uuid4().hex
        log.warning("request_head_too_large", limit=self.max_head_bytes, request_id=rid)
        body = json.dumps(
            {
                "error": ErrorCode.REQUEST_HEADER_TOO_LARGE.value,
                "message": f"request line and headers exceed {self.max_head_bytes} bytes",
                "request_id": rid,
            },
            separators=(",", ":"),
        ).encode()
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"cache-control: no-store\r\n"
            b"connection: close\r\n"
            b"x-request-id: " + rid.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        self.transport.write(head + body)
        # Lingering close: closing a socket with unread input makes the kernel send RST, which can
        # destroy the 431 before the client reads it. So stop reading (the client's sends block, it
        # costs no parsing), send FIN after the answer, and close for good after LINGER_S.
        self._refused = True
        self.transport.pause_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
