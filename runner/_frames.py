"""The runner's framed listener (EXT_FRAME_PORT): the execute hop without HTTP (schema.runner_frames).

It runs on the same event loop as the HTTP app and hands every frame to the same `run_envelope` as
`POST /v1/execute`, so admission, deadlines, limits and answers are identical; only the parsing of
HTTP (uvicorn, httptools, Starlette's request/response objects) is gone.

While a call runs, the connection is watched as the HTTP app watches its: the gateway sends nothing
while it waits (one call at a time), so EOF means it left and anything else is a protocol error;
either way the call is abandoned (it leaves the queue, or its guest ends at the next deadline check)
and the connection is closed without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from schema.runner_frames import (
    HELLO_OK,
    HELLO_REFUSED,
    MAC_BYTES,
    MAGIC,
    NONCE_BYTES,
    REQUEST_HEAD,
    answer_frame,
    handshake_mac,
)

log = structlog.get_logger(__name__)

RunEnvelope = Callable[[bytes, "asyncio.Future[Any]"], Awaitable[tuple[int, bytes]]]
_HANDSHAKE_S = 5.0


class FrameServer:
    def __init__(
        self, run: RunEnvelope, *, auth: bytes, max_envelope: int, idle_s: float, oversize: bytes
    ) -> None:
        self._run = run
        self._auth = auth
        self._max_envelope = max_envelope
        self._idle_s = idle_s
        self._oversize = oversize  # the 400 answer body for an envelope over max_envelope
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0 picks a free one)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("frame_listener_started", host=host, port=bound)
        return bound

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            if await self._hello(reader, writer):
                await self._calls(reader, writer)
        except (ConnectionError, OSError):
            pass  # the gateway went away; nothing to answer
        finally:
            self._open.discard(writer)
            writer.close()

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonce = os.urandom(NONCE_BYTES)
        writer.write(MAGIC + nonce)
        try:
            async with asyncio.timeout(_HANDSHAKE_S):
                mac = await reader.readexactly(MAC_BYTES)
        except (TimeoutError, asyncio.IncompleteReadError):
            return False
        if not hmac.compare_digest(mac, handshake_mac(self._auth, nonce)):
            log.warning("frame_handshake_refused")
            writer.write(HELLO_REFUSED)
            await writer.drain()
            return False
        writer.write(HELLO_OK)
        return True

    async def _calls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle_s):
                    head = await reader.readexactly(REQUEST_HEAD.size)
            except (TimeoutError, asyncio.IncompleteReadError):
                return  # idle past the keep-alive, or the gateway closed between calls
            (length,) = REQUEST_HEAD.unpack(head)
            if length > self._max_envelope:
                # The body is not read: the stream position is lost, so answer and close.
                writer.write(answer_frame(400, self._oversize))
                await writer.drain()
                return
            try:
                raw = await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                return
            gone: asyncio.Future[bytes] = asyncio.ensure_future(reader.read(1))
            try:
                status, body = await self._run(raw, gone)
            finally:
                left = gone.done()
                if left:
                    gone.exception()  # retrieved: a reset is just "left"
                else:
                    gone.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await gone
            if left:
                return  # EOF (abandoned) or bytes sent mid-call (protocol error): no answer
            writer.write(answer_frame(status, body))
            await writer.drain()
