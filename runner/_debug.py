"""Debug events: what a tenant may watch of its own extension (guest logs, stdout, stderr, failures).

`DebugSink` is the port. `InMemoryDebugSink` keeps the last events in process (tests, dev);
`runner._debug_redis.RedisDebugSink` (one Redis stream per tenant and extension) is what
`python -m runner` uses. Sinks must not block: the runner calls them on executor threads, in the
middle of a guest's execution. A sink that also exposes `collector()` (`MeteredSink`) gets its
counters into the runner's `/metrics`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from prometheus_client.registry import Collector

Level = Literal["debug", "info", "warn", "error"]
Stream = Literal["log", "stdout", "stderr", "runner"]
MAX_EVENT_BYTES = 8 * 1024


@dataclass(frozen=True, kw_only=True)
class DebugEvent:
    ts: float
    level: Level
    stream: Stream
    tenant: str
    extension: str
    install_id: str
    request_id: str
    version: str
    content_hash: str
    message: str
    truncated: bool = False


class DebugSink(Protocol):
    def emit(self, event: DebugEvent) -> None:
        """Record one event; never raises, never blocks for long."""
        ...


@runtime_checkable
class MeteredSink(Protocol):
    def emit(self, event: DebugEvent) -> None: ...

    def collector(self) -> Collector:
        """Prometheus collector of the sink's own counters (published, dropped, buffered)."""
        ...


class InMemoryDebugSink:
    """The last `capacity` events, oldest first; thread-safe."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[DebugEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def emit(self, event: DebugEvent) -> None:
        with self._lock:
            self._events.append(event)

    def events(self, *, request_id: str | None = None, tenant: str | None = None) -> list[DebugEvent]:
        with self._lock:
            snapshot = list(self._events)
        return [
            e
            for e in snapshot
            if (request_id is None or e.request_id == request_id) and (tenant is None or e.tenant == tenant)
        ]


def cut(message: str, limit: int = MAX_EVENT_BYTES) -> tuple[str, bool]:
    """Cut `message` to at most `limit` UTF-8 bytes (never inside a character)."""
    raw = message.encode("utf-8", "replace")
    if len(raw) <= limit:
        return message, False
    return raw[:limit].decode("utf-8", "ignore"), True


class OutputCapture:
    """Collects one guest output stream (WASI stdout or stderr) up to `limit` bytes, dropping the rest.

    Called by wasmtime's custom-output callback for every write; returning the full size makes the
    guest believe every write succeeded, so a flood costs it fuel and time, never an error.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._kept = 0
        self.total = 0

    def write(self, data: bytes) -> int:
        self.total += len(data)
        room = self._limit - self._kept
        if room > 0:
            piece = data[:room]
            self._chunks.append(piece)
            self._kept += len(piece)
        return len(data)

    @property
    def truncated(self) -> bool:
        return self.total > self._kept

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")


def now() -> float:
    return time.time()
