"""ExecLogWriter.stop(): every queued row is written or counted as dropped, never lost (real Postgres)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from api.gateway.execlog import ExecLogWriter, ExecRow
from api.gateway.metrics import GatewayMetrics

pytestmark = pytest.mark.integration


def row(tenant: str) -> ExecRow:
    return ExecRow(
        request_id=uuid.uuid4().hex,
        tenant_id=tenant,
        extension_name="com.acme.app",
        version="1.0.0",
        install_id=None,
        method="GET",
        endpoint="/status",
        status=200,
        outcome="ok",
        duration_ms=1.0,
        principal="token:x",
        operator=False,
        fuel_consumed=None,
    )


def counts(metrics: GatewayMetrics) -> tuple[float, float]:
    written = metrics.registry.get_sample_value("gateway_execlog_written_total")
    dropped = metrics.registry.get_sample_value("gateway_execlog_dropped_total")
    return written or 0.0, dropped or 0.0


async def test_stop_writes_rows_still_waiting_for_their_flush(db_pool: asyncpg.Pool) -> None:
    """A long flush interval holds rows (one of them already taken by the writer) when stop comes."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    metrics = GatewayMetrics.create()
    writer = ExecLogWriter(db_pool, metrics, max_queue=100, batch=2, flush_ms=60_000)
    writer.start()
    writer.submit(row(tenant))
    for _ in range(3):  # let the writer run and start waiting out its flush interval, as in a live gateway
        await asyncio.sleep(0)
    for _ in range(4):
        writer.submit(row(tenant))
    await writer.stop()
    written = await db_pool.fetchval("SELECT count(*) FROM execution_log WHERE tenant_id = $1", tenant)
    assert written == 5
    assert counts(metrics) == (5.0, 0.0)
    writer.submit(row(tenant))  # a call that ends after shutdown: counted, not silently discarded
    assert counts(metrics) == (5.0, 1.0)


async def test_stop_counts_rows_it_cannot_write_in_time(db_pool: asyncpg.Pool, db_url: str) -> None:
    """Postgres blocks the COPY (the table is locked): stop gives up at its deadline and counts them all."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    metrics = GatewayMetrics.create()
    writer = ExecLogWriter(db_pool, metrics, max_queue=100, batch=2, flush_ms=60_000, stop_timeout_s=0.5)
    writer.start()
    for _ in range(5):
        writer.submit(row(tenant))
    blocker = await asyncpg.connect(db_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE execution_log IN ACCESS EXCLUSIVE MODE")
        await writer.stop()
        assert counts(metrics) == (0.0, 5.0)
        await tx.rollback()
    finally:
        await blocker.close()
    assert await db_pool.fetchval("SELECT count(*) FROM execution_log WHERE tenant_id = $1", tenant) == 0
