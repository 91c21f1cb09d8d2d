"""Fault: Postgres is restarted (pg_ctl stop -m fast, then start on the same port and data) while
tenant traffic flows. The gateway recovers by itself, without a restart: its asyncpg pool reconnects.

While Postgres is down, calls whose install resolution is cached in the gateway (the steady state:
no Postgres query per call) keep succeeding; a call that needs a registry read (here: a tenant whose
install was never called) fails closed with 503. After the restart both succeed, and execution-log
rows reach the database again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.faults.conftest import run_stack
from tests.faults.harness import FaultStack, clean_environ, eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.fixture
def pg_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """A stack with its own embedded Postgres cluster (the one this test restarts)."""
    yield from run_stack(tmp_path / "stack", clean_environ())


async def test_gateway_recovers_from_a_postgres_restart(pg_stack: FaultStack) -> None:
    tenant, ext = await pg_stack.ready_extension()
    cold = "t-cold"  # installed, never called: its resolution is not cached in the gateway
    async with pg_stack.api() as api:
        await pg_stack.install(api, cold, ext)
    seen: Counter[int] = Counter()
    stop = asyncio.Event()

    async with pg_stack.gateway(tenant, timeout=10) as gw:

        async def traffic() -> None:
            while not stop.is_set():
                try:
                    seen[(await gw.get(f"/api/ext/{ext}/hello")).status_code] += 1
                except Exception:
                    seen[0] += 1

        loops = [asyncio.create_task(traffic()) for _ in range(4)]
        try:
            await eventually(lambda: _gt(seen[200], 20), timeout=30, what="traffic before the restart")
            pg = pg_stack.postgres()
            await asyncio.to_thread(pg.stop)
            during = seen[200]
            await eventually(lambda: _gt(seen[200], during + 20), timeout=30, what="cached calls while down")
            async with pg_stack.gateway(cold, timeout=30) as cold_gw:
                refused = await cold_gw.get(f"/api/ext/{ext}/hello")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "registry_unavailable", refused.text
            await asyncio.to_thread(pg.start)
            pg_stack.record("postgres", pid=pg.pid())
            rows_at_restart = await _log_rows(pg_stack, ext)
            ok_before = seen[200]
            await eventually(lambda: _gt(seen[200], ok_before + 50), timeout=60, what="200s after restart")
        finally:
            stop.set()
            await asyncio.gather(*loops)

        # Steady state again: every call succeeds, the one that needs a registry read too.
        statuses = [(await gw.get(f"/api/ext/{ext}/hello")).status_code for _ in range(20)]
        assert statuses == [200] * 20, seen
    async with pg_stack.gateway(cold, timeout=30) as cold_gw:
        resp = await cold_gw.get(f"/api/ext/{ext}/hello")
        assert resp.status_code == 200, resp.text

    async def logged() -> bool:
        return await _log_rows(pg_stack, ext) > rows_at_restart

    await eventually(logged, timeout=30, what="execution_log rows written after the restart")
    assert set(seen) <= {200, 502, 503, 0}, seen


async def _gt(a: int, b: int) -> bool:
    return a > b


async def _log_rows(fs: FaultStack, ext: str) -> int:
    conn = await asyncpg.connect(fs.env["EXT_DATABASE_URL"])
    try:
        n = await conn.fetchval("SELECT count(*) FROM execution_log WHERE extension_name = $1", ext)
    finally:
        await conn.close()
    return int(n)
