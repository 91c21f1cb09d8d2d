"""execution_log: one row per tenant call, queued on the request path and written in batches off it.

This is the gateway's only write to Postgres, and it is telemetry, not registry state: the registry is
written only by activities (through registry.write, inside audited workflows), while a call record is
an append-only fact about traffic that no workflow could record without putting Temporal on the hot
path. Hence this small module writes `execution_log` directly with COPY, and nothing else.

A row says who called (`principal`: "token:<id>" or "admin", and `operator` when a global admin token
acted for the tenant) and what the guest cost (`fuel_consumed`, None when no guest ran), but never
bodies, headers, tokens or secrets. The queue is bounded: when Postgres is slow or down,
new rows are dropped and counted (gateway_execlog_dropped_total), and calls are never slowed down.
"""

from __future__ import annotations

import asyncio
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
        self, pool: asyncpg.Pool, metrics: GatewayMetrics, *, max_queue: int, batch: int, flush_ms: int
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._queue: asyncio.Queue[ExecRow] = asyncio.Queue(maxsize=max_queue)
        self._batch = batch
        self._flush_s = flush_ms / 1000.0
        self._task: asyncio.Task[None] | None = None

    def submit(self, row: ExecRow) -> None:
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._metrics.execlog_dropped.inc()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-execlog-writer")

    async def stop(self) -> None:
        """Write what is queued (bounded by a deadline), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        try:
            async with asyncio.timeout(5.0):
                while not self._queue.empty():
                    await self._write(self._drain())
        except TimeoutError:
            self._metrics.execlog_dropped.inc(self._queue.qsize())

    def _drain(self) -> list[ExecRow]:
        rows: list[ExecRow] = []
        while len(rows) < self._batch and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        return rows

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            # Let a batch accumulate briefly: one COPY per flush interval instead of one per call.
            await asyncio.sleep(self._flush_s)
            rows = [first, *self._drain()]
            await self._write(rows)

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
