"""Co-located mode: guests run inside the calling process, for a single-host gateway
(`EXT_RUNNER_URL=local:`).

Why: docs/performance.md measured a cheap guest's call through a runner process as mostly the hop
itself (the gateway's client, the runner's socket thread, the envelope's bytes through the kernel
twice). With the runner in the gateway's process that hop is gone. Everything else is
the runner's own code, built by runner._services exactly as `python -m runner` builds it: the same
admission, fair shares, fuel, deadline and memory limits, a fresh Store per call, the same
capability-gated host services and the same answer bytes. The wasm sandbox is the isolation in both
modes; what co-location gives up is a process boundary between the gateway's memory (its token and
install caches) and the engine, which docs/deploy.md weighs.

Calls known to be short run on the event loop's own thread, without the hand-off to a guest thread
(runner._inline, EXT_LOCAL_INLINE_US); the others run on the guest threads as in a runner process.

`call` takes the envelope as the model the gateway built and answers a guest that ran with its
Outcome: between two parts of one process there is no JSON to write and parse (docs/performance.md
measured the envelope's and the answer's JSON as the largest Python slice of a co-located call after
conversion). Refusals and failures stay the answer bytes a runner sends, so the gateway maps them
exactly as a remote runner's. `execute` is the bytes-in, bytes-out form of the same call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from prometheus_client import generate_latest

from bundles.blobstore import BlobStore, FilesystemBlobStore
from core.settings import RunnerSettings
from runner._debug import DebugSink, MeteredSink
from runner._debug_redis import RedisDebugSink
from runner._engine import Outcome
from runner._execute import Admitted, Answer, Reply
from runner._inline import InlinePolicy
from runner._metrics import Metrics
from runner._services import Services, debug_sink_of
from schema.envelope import ExecuteRequest

__all__ = ["LocalRunner", "Outcome"]

log = structlog.get_logger(__name__)


class LocalRunner:
    """The runner's executor in this process: `await execute(envelope, timeout_s=...)`."""

    def __init__(self, services: Services, metrics: Metrics, redis_sink: RedisDebugSink | None) -> None:
        self._services = services
        self._metrics = metrics
        self._redis_sink = redis_sink
        # Calls whose caller stopped waiting: their guest is told to stop, and until it has, its
        # task (and so its admission slot) lives on here.
        self._abandoned: set[asyncio.Future[Reply]] = set()

    @classmethod
    def open(
        cls, settings: RunnerSettings, *, sink: DebugSink | None = None, blobs: BlobStore | None = None
    ) -> LocalRunner:
        """Build the engine, pools and threads; call on the event loop that will call `execute`.
        Without `sink`, EXT_DEBUG_SINK's (the Redis streams one by default) is started here."""
        metrics = Metrics.create()
        redis_sink: RedisDebugSink | None = None
        if sink is None:
            sink, redis_sink = debug_sink_of(settings)
            if redis_sink is not None:
                redis_sink.start()
        if isinstance(sink, MeteredSink):
            metrics.registry.register(sink.collector())
        blob_store = blobs if blobs is not None else FilesystemBlobStore(settings.data_dir / "blobs")
        inline = InlinePolicy(budget_s=settings.local_inline_us / 1e6)
        services = Services.open(settings, metrics=metrics, sink=sink, blobs=blob_store, inline=inline)
        log.info(
            "local_runner_started",
            threads=settings.threads,
            queue_depth=settings.queue_depth,
            inline_us=settings.local_inline_us,
        )
        return cls(services, metrics, redis_sink)

    async def execute(self, envelope: bytes, *, timeout_s: float) -> Answer:
        """(status, answer JSON) as `POST /v1/execute` would answer; TimeoutError as `call`."""
        return self._services.executor.render(await self.call(envelope, timeout_s=timeout_s))

    async def call(self, envelope: bytes | ExecuteRequest, *, timeout_s: float) -> Reply:
        """The Outcome of a guest that ran and answered, else (status, answer JSON) as `POST
        /v1/execute` would answer. TimeoutError when there is no answer within `timeout_s`: the
        call then leaves the queue, or its guest ends at its next deadline check, as when a remote
        caller hangs up."""
        executor = self._services.executor
        admitted = executor.start(envelope)
        if not isinstance(admitted, Admitted):
            return admitted  # refused, or run inline on this thread (runner._inline)
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        call = asyncio.ensure_future(executor.finish(admitted, gone))
        try:
            done, _ = await asyncio.wait((call,), timeout=timeout_s)
        except BaseException:  # our caller was cancelled (its client left): so is the call
            self._abandon(call, gone)
            raise
        if not done:
            self._abandon(call, gone)
            raise TimeoutError
        return call.result()

    def _abandon(self, call: asyncio.Future[Reply], gone: asyncio.Future[None]) -> None:
        # Never cancel the task itself: it would release the admission slot while its guest thread
        # still runs. `gone` makes the executor stop the guest; the task then ends on its own.
        if not gone.done():
            gone.set_result(None)
        self._abandoned.add(call)
        call.add_done_callback(self._forget)

    def _forget(self, call: asyncio.Future[Any]) -> None:
        self._abandoned.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.error("local_call_failed", error=type(call.exception()).__name__)

    def metrics_text(self) -> bytes:
        """The runner's Prometheus metrics (extplane_runner_*), for the host process's /metrics."""
        return generate_latest(self._metrics.registry)

    async def aclose(self) -> None:
        """After the last call: abandoned guests end (each at its deadline at most), then the rest."""
        if self._abandoned:
            await asyncio.wait(tuple(self._abandoned))
        await self._services.aclose()
        if self._redis_sink is not None:
            self._redis_sink.close()
