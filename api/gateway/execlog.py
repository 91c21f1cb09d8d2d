"""execution_log: one row per tenant call, queued on the request path and written in batches off it.

This is the gateway's only write to Postgres, and it is telemetry, not registry state: the registry is
written only by activities (through registry.write, inside audited workflows), while a call record is
an append-only fact about traffic that no workflow could record without putting Temporal on the hot
path. Hence this small module writes `execution_log` directly with COPY, and nothing else.

A row says who called (`principal`: "token:<id>" or "admin", and `operator` when a global admin token
acted for the tenant) and what the guest cost (`fuel_consumed`, None when no guest ran), but never
bodies, headers, tokens or secrets. The queue is bounded: when Postgres is slow or down,
new rows are dropped and counted (gateway_execlog_dropped_total), and calls are never slowed down.

At shutdown (`stop`) every row is accounted for: the rows still queued and the batch in hand are
written within `stop_timeout_s`, and whatever could not be written by then (or arrives after stop) is
counted as dropped. Nothing disappears uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from api.gateway.metrics import GatewayMetrics

log = structlog.get_logger(__name__)

COLUMNS = (
    "request_id",
    "tenant_id",
    "extension_name",
    "version",
    "install_id",
    "method",
    "endpoint",
    "status",
    "outcome",
    "duration_ms",
    "principal",
    "operator",
    "fuel_consumed",
)


@dataclass(frozen=True, slots=True)
class ExecRow:
    request_id: str
    tenant_id: str
    extension_name: str
    version: str | None
    install_id: uuid.UUID | None
    method: str
    endpoint: str | None
    status: int
    outcome: str
    duration_ms: float
    principal: str
    operator: bool
    fuel_consumed: int | None

    def record(self) -> tuple[object, ...]:
        # Not dataclasses.astuple: it deep-copies every field, which cost more than the rest of a call.
        return (
            self.request_id,
            self.tenant_id,
            self.extension_name,
            self.version,
            self.install_id,
            self.method,
            self.endpoint,
            self.status,
            self.outcome,
            self.duration_ms,
            self.principal,
            self.operator,
            self.fuel_consumed,
        )


class ExecLogWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: GatewayMetrics,
        *,
        max_queue: int,
        batch: int,
        flush_ms: int,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._queue: asyncio.Queue[ExecRow] = asyncio.Queue(maxsize=max_queue)
        self._batch = batch
        self._flush_s = flush_ms / 1000.0
        self._stop_timeout_s = stop_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # set by submit and stop: the writer sleeps while nothing is queued
        self._closed = False
        # Rows taken off the queue and not yet written or counted: what a cancelled write leaves behind.
        self._in_hand: list[ExecRow] = []

    def submit(self, row: ExecRow) -> None:
        if self._closed:  # a call that finished after shutdown: no writer is left to take its row
            self._metrics.execlog_dropped.inc()
            return
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._metrics.execlog_dropped.inc()
        else:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-execlog-writer")

    async def stop(self) -> None:
        """Write what is queued and in hand within `stop_timeout_s`; count the rest as dropped.

        The writer is asked to finish rather than cancelled first: cancelling it mid-COPY could lose a
        batch that Postgres had already taken (or write it twice if it were retried)."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(self._stop_timeout_s):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._closed = True
        lost = len(self._in_hand) + self._queue.qsize()
        self._in_hand = []
        while not self._queue.empty():
            self._queue.get_nowait()
        if lost:
            self._metrics.execlog_dropped.inc(lost)
            log.warning("execlog_rows_dropped_at_stop", rows=lost)

    def _drain(self) -> list[ExecRow]:
        rows: list[ExecRow] = []
        while len(rows) < self._batch and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        return rows

    async def _run(self) -> None:
        while True:
            if self._queue.empty():
                if self._stopping.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            # Let a batch accumulate briefly: one COPY per flush interval instead of one per call. A stop
            # cuts the wait short, so shutdown writes at once.
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_s):
                        await self._stopping.wait()
            self._in_hand = self._drain()
            await self._write(self._in_hand)
            self._in_hand = []

    async def _write(self, rows: list[ExecRow]) -> None:
        if not rows:
            return
        try:
            await self._pool.copy_records_to_table(
                "execution_log", records=[r.record() for r in rows], columns=COLUMNS, timeout=10.0
            )
        except Exception as exc:  # Postgres trouble must never reach tenant calls; count and move on
            self._metrics.execlog_dropped.inc(len(rows))
            log.warning("execlog_write_failed", rows=len(rows), error=type(exc).__name__)
        else:
            self._metrics.execlog_written.inc(len(rows))
