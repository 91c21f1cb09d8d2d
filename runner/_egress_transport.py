"""The egress client's transport: httpx over httpcore, every socket operation bounded by a deadline.

httpx's timeouts apply to each connect, read and write on its own, so an upstream that sends one byte
just inside the read timeout, again and again, keeps a fetch (and the guest's executor thread) for as
long as it likes. Here each operation's timeout is cut to what is left before the deadline of the
fetch that opened the connection, and an operation that starts after it fails at once: a fetch ends
by its deadline, whatever the upstream does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from ssl import SSLContext
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineBackend", "DeadlineTransport"]


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation waits at most until the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _timeout(self, timeout: float | None, expired: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise expired("the fetch's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context, server_hostname, self._timeout(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, with connections bound to the deadline of the fetch that opens them.

    The deadline is per thread: the sync client does a fetch's I/O on the calling (executor) thread,
    and connections are never pooled (no keep-alive), so each serves the fetch that opened it.
    """

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._local = threading.local()

    @contextmanager
    def deadline(self, at: float) -> Iterator[None]:
        self._local.at = at
        try:
            yield
        finally:
            self._local.at = math.inf

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        at: float = getattr(self._local, "at", math.inf)
        left = at - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the fetch's deadline passed")
        timeout = left if timeout is None else min(timeout, left)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, at)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport on a pool that uses `DeadlineBackend` (HTTPTransport takes no backend)."""

    def __init__(self, backend: DeadlineBackend) -> None:
        super().__init__(trust_env=False)
        # No keep-alive: connections are keyed by the pinned IP, so a pooled TLS connection opened (and
        # certificate-checked) for one host name could otherwise carry a request for another name that
        # resolves to the same address.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_keepalive_connections=0,
            network_backend=backend,
        )
