"""The Redis streams debug sink: `XADD {prefix}{tenant}:{extension} MAXLEN ~ {maxlen} * field value ...`.

Best effort by construction, never on the execute path:

* `emit` appends to a bounded in-process buffer under a lock and returns (O(1), never touches a
  socket). When the buffer is full the *oldest* event is dropped and counted: a tenant watching a
  flood cares about what happens now.
* One daemon thread publishes batches (one pipeline round trip per batch). On a Redis failure the
  batch goes back to the front of the buffer and the thread retries with exponential backoff (50 ms
  doubling up to `retry_max_s`); executes keep running and only the buffer fills (then drops).
  Delivery is therefore at least once: when a connection dies after Redis applied a batch but before
  its reply arrived, the batch is sent again after the reconnect. Debug output prefers a repeated
  line to a lost one.
* `/metrics` shows published, dropped and buffered events and whether Redis is reachable
  (`collector()`, registered by the runner app).

The key needs no escaping: extension names never contain `:` (schema.manifest.NAME_RE), so the last
`:` of a key always separates the tenant from the extension.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

import redis
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runner._debug import DebugEvent

log = structlog.get_logger(__name__)

INITIAL_BACKOFF_S = 0.05


def stream_key(prefix: str, tenant: str, extension: str) -> str:
    return f"{prefix}{tenant}:{extension}"


def encode(event: DebugEvent) -> dict[str, str]:
    """The stream entry's fields (the gateway's api.gateway.debug_stream decodes the same names)."""
    return {
        "ts": f"{event.ts:.6f}",
        "level": event.level,
        "stream": event.stream,
        "tenant": event.tenant,
        "extension": event.extension,
        "install_id": event.install_id,
        "request_id": event.request_id,
        "version": event.version,
        "content_hash": event.content_hash,
        "message": event.message,
        "truncated": "1" if event.truncated else "0",
    }


class RedisDebugSink:
    """A `DebugSink` publishing to Redis streams from a background thread (see module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ext-debug:",
        maxlen: int = 2000,
        buffer_events: int = 10_000,
        batch_events: int = 256,
        retry_max_s: float = 5.0,
        linger_s: float = 0.002,
        socket_timeout_s: float = 2.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._maxlen = maxlen
        self._capacity = max(1, buffer_events)
        self._batch = max(1, batch_events)
        self._retry_max_s = retry_max_s
        self._linger_s = linger_s
        self._socket_timeout_s = socket_timeout_s
        self._buffer: deque[DebugEvent] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self.published = 0
        self.dropped = 0
        self.failures = 0
        self.connected = False
        self._thread: threading.Thread | None = None

    # -- the runner's side: executor threads, in the middle of a guest's execution ------------------

    def emit(self, event: DebugEvent) -> None:
        with self._cond:
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(event)
            if len(self._buffer) == 1 or len(self._buffer) >= self._batch:
                self._cond.notify()  # the publisher waits for a first event, or lingers for a batch

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="debug-redis-publisher", daemon=True)
            self._thread.start()

    def close(self, *, timeout_s: float = 2.0) -> None:
        """Flush what Redis accepts within `timeout_s`, then stop the thread (the rest is dropped)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._cond:
            self.dropped += len(self._buffer)
            self._buffer.clear()

    def buffered(self) -> int:
        with self._cond:
            return len(self._buffer)

    # -- the publisher thread -------------------------------------------------------------------------

    def _take(self) -> list[DebugEvent] | None:
        with self._cond:
            while not self._buffer and not self._closing:
                self._cond.wait()
            if not self._buffer:
                return None  # closing and drained
            if self._linger_s and len(self._buffer) < self._batch and not self._closing:
                # One execution emits several events in a burst (log lines, then stdout, stderr):
                # a short linger sends them in one round trip and wakes this thread once, not per event.
                self._cond.wait(self._linger_s)
            return [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]

    def _requeue(self, batch: list[DebugEvent]) -> None:
        with self._cond:
            # The batch is older than anything buffered since: drop-oldest cuts from its front.
            room = max(0, self._capacity - len(self._buffer))
            keep = batch[len(batch) - room :] if room < len(batch) else batch
            self.dropped += len(batch) - len(keep)
            self._buffer.extendleft(reversed(keep))

    def _wait(self, seconds: float) -> bool:
        """Sleep for a retry unless closing; True when the sink is closing."""
        with self._cond:
            if not self._closing:
                self._cond.wait(seconds)
            return self._closing

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url,
            socket_timeout=self._socket_timeout_s,
            socket_connect_timeout=self._socket_timeout_s,
            client_name="extplane-runner-debug",
        )

    def _run(self) -> None:
        client = self._client()
        backoff = INITIAL_BACKOFF_S
        while True:
            batch = self._take()
            if batch is None:
                break
            try:
                pipe = client.pipeline(transaction=False)
                for event in batch:
                    key = stream_key(self._prefix, event.tenant, event.extension)
                    pipe.xadd(key, encode(event), maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                pipe.execute()
            except Exception as exc:  # any Redis/socket failure: keep the events, retry later
                self._requeue(batch)
                self.failures += 1
                if self.connected or self.failures == 1:
                    log.warning("debug_redis_unavailable", error=type(exc).__name__, retry_in_s=backoff)
                self.connected = False
                if self._wait(backoff):
                    break
                backoff = min(backoff * 2, self._retry_max_s)
                client.close()
                client = self._client()
                continue
            if not self.connected:
                log.info("debug_redis_connected")
            self.connected = True
            backoff = INITIAL_BACKOFF_S
            with self._cond:
                self.published += len(batch)
        client.close()

    # -- /metrics -------------------------------------------------------------------------------------

    def collector(self) -> Collector:
        return _SinkCollector(self)


class _SinkCollector(Collector):
    def __init__(self, sink: RedisDebugSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._sink
        published = CounterMetricFamily(
            "extplane_runner_debug_events_published", "Debug events written to Redis"
        )
        published.add_metric([], s.published)
        yield published
        dropped = CounterMetricFamily(
            "extplane_runner_debug_events_dropped",
            "Debug events dropped (buffer full while Redis was slow or down, or at shutdown)",
        )
        dropped.add_metric([], s.dropped)
        yield dropped
        buffered = GaugeMetricFamily("extplane_runner_debug_events_buffered", "Debug events waiting")
        buffered.add_metric([], s.buffered())
        yield buffered
        up = GaugeMetricFamily("extplane_runner_debug_redis_connected", "1 while the last publish succeeded")
        up.add_metric([], 1.0 if s.connected else 0.0)
        yield up
