"""Redis down: the stream says so (`warning`), calls keep succeeding, and streaming resumes when a
redis-server comes back on the same port — with the events the runner buffered meanwhile."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.debug.conftest import (
    RedisServer,
    SseEvent,
    eventually,
    limiter_redis_url,
    start_stack,
    stop_stack,
)
from tests.debug.test_debug_stream import names, sse
from tests.runner.runner_helpers import envelope, publish, start_runner

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    found = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def test_redis_killed_mid_stream_then_restarted(
    debug_db_url: str, debug_guest: tuple[bytes, bytes], worker_id_num: int, tmp_path: Path
) -> None:
    stack = start_stack(
        tmp_path / "stack",
        db_url=debug_db_url,
        guest=debug_guest,
        limiter_url=limiter_redis_url(worker_id_num),
    )
    try:
        tenant, ext = names()
        await stack.install(tenant, ext)
        token = await stack.token(tenant, "ext:read", "ext:debug")
        async with sse(stack.gateway.url, token, {"extension": ext, "tail": 0}) as reader:
            assert (await stack.call(token, ext, "/chatty?tag=before")).status_code == 200
            await reader.until(lambda e: e.data.get("message") == "log before")

            stack.redis.kill()
            seen: list[SseEvent] = []
            warning = await reader.until(lambda e: e.event == "warning", keep=seen)
            assert warning.data["code"] == "debug_stream_unavailable"

            # Calls keep working while the debug Redis is gone; their events wait in the runner.
            for i in range(3):
                resp = await stack.call(token, ext, f"/chatty?tag=during{i}")
                assert resp.status_code == 200, resp.text
            assert await _metric(stack.runner.url, "extplane_runner_debug_redis_connected") == 0.0

            async def buffered() -> bool:
                return await _metric(stack.runner.url, "extplane_runner_debug_events_buffered") >= 9

            await eventually(buffered)

            stack.redis.start()  # same port, empty data set
            await reader.until(lambda e: e.event == "resumed", keep=seen)
            assert (await stack.call(token, ext, "/chatty?tag=after")).status_code == 200
            await reader.until(lambda e: e.data.get("message") == "log after", keep=seen)
            messages = [e.data.get("message", "") for e in seen if e.event == "message"]
            # The runner's buffered events were published on reconnect and streamed in order. Delivery
            # is at least once: a batch whose reply the kill cut off ("log before", already shown) is
            # sent again, so it may lead; nothing may be lost or reordered.
            logs = [m for m in messages if m.startswith("log ")]
            assert logs[: logs.count("log before")] == ["log before"] * logs.count("log before")
            assert [m for m in logs if m != "log before"] == [
                "log during0",
                "log during1",
                "log during2",
                "log after",
            ]
        assert await _metric(stack.runner.url, "extplane_runner_debug_redis_connected") == 1.0
        assert await _metric(stack.runner.url, "extplane_runner_debug_events_dropped") == 0.0
    finally:
        stop_stack(stack)


async def test_a_full_buffer_drops_oldest_and_counts_never_failing_executes(
    debug_db_url: str, debug_guest: tuple[bytes, bytes], tmp_path: Path
) -> None:
    dead = RedisServer(tmp_path)  # a port nothing listens on
    runner = start_runner(
        tmp_path, debug_db_url, threads=2, debug_redis_url=dead.url(), debug_buffer_events=4
    )
    try:
        wasm, artifact = debug_guest
        manifest = {
            "name": "com.debug.drop",
            "publisher": "acme",
            "version": "1.0.0",
            "runtime": "wasm-component@1",
        }
        chash = publish(runner.data_dir, wasm, manifest, tmp_path, artifact=artifact)
        async with runner.client() as client:
            for i in range(3):  # 3 events each: 9 emitted, 4 kept
                env = envelope(chash, "/chatty", method="GET", query=f"tag={i}", extension="com.debug.drop")
                resp = await client.post("/v1/execute", json=env)
                assert resp.status_code == 200 and resp.json()["status"] == 200, resp.text

        async def settled() -> tuple[float, float] | None:
            # A batch being retried is briefly out of the buffer; wait for it to be put back.
            dropped = await _metric(runner.url, "extplane_runner_debug_events_dropped")
            held = await _metric(runner.url, "extplane_runner_debug_events_buffered")
            return (dropped, held) if held == 4.0 else None

        assert await eventually(settled) == (5.0, 4.0)
        assert await _metric(runner.url, "extplane_runner_debug_events_published") == 0.0
    finally:
        runner.stop()
