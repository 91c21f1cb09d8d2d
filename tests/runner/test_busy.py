"""Admission control: with every thread and queue slot taken the runner answers 503 runner_busy at once,
and serves again once the slot frees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner.runner_helpers import FIXTURES, RunnerProcess, envelope, manifest, publish, start_runner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_runner(runner_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    # No fuel cap below what the looping guest burns in its 3 s: the deadline must be what ends it.
    proc = start_runner(
        tmp_path_factory.mktemp("busy"), runner_db_url, threads=1, queue_depth=0, max_fuel=10**16
    )
    yield proc
    proc.stop()


async def test_saturated_runner_refuses_then_recovers(small_runner: RunnerProcess, work_dir: Path) -> None:
    chash = publish(small_runner.data_dir, (FIXTURES / "hostile.wasm").read_bytes(), manifest(), work_dir)
    async with small_runner.client() as client:
        slow = asyncio.create_task(
            client.post(
                "/v1/execute", json=envelope(chash, "/loop", limits={"fuel": 10**15, "timeout_ms": 3000})
            )
        )
        deadline = time.monotonic() + 10
        while (await client.get("/healthz")).json()["admitted"] < 1:
            assert time.monotonic() < deadline, "the slow request was never admitted"
            await asyncio.sleep(0.01)
        busy = await client.post("/v1/execute", json=envelope(chash, "/echo"))
        assert (busy.status_code, busy.json()["error"]["code"]) == (503, "runner_busy")
        slow_resp = await slow
        assert slow_resp.status_code == 504, slow_resp.text
        ok = await client.post("/v1/execute", json=envelope(chash, "/echo", body=b"back"))
        assert ok.status_code == 200
        assert "extplane_runner_busy_rejections_total 1.0" in (await client.get("/metrics")).text
