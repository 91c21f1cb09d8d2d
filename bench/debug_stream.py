"""Debug-stream benchmark: `python -m bench.debug_stream [--calls N]`.

Measured in one run, on this machine, against real processes (Postgres and the limiter's Redis from
EXT_DATABASE_URL / EXT_REDIS_URL, else an embedded stack; a redis-server of its own for the stream):

1. delay from the guest's `log.info` call (the event's `ts`, taken in the runner when the host function
   runs) to the SSE client receiving it through `python -m api.gateway`: p50 / p99 / max;
2. execute overhead of streaming: the same calls (`/chatty`: one log line, stdout and stderr = 3
   events) through a gateway + runner with the Redis sink and an SSE client attached ("on"), and
   through a gateway + runner with `EXT_DEBUG_SINK=memory` and no stream ("off"); rounds alternate
   between the two so drift hits both; per-call p50 / p99 and the on/off ratio, sequential and at 8
   concurrent callers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.gateway import services
from bench.report import Row
from core.migrations import ensure_database, migrate
from tests.debug.conftest import GUEST_DIR, RedisServer, Stack, bearer, start_gateway
from tests.runner.runner_helpers import python_guest, start_runner

ROUNDS = 6


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _follow(url: str, token: str, ext: str, out: Path) -> None:
    """The viewer, run in its own process (`--follow`) so its CPU is not the caller's: records the delay
    of every guest log event, prints `ready` once subscribed, writes the delays at SIGTERM."""
    delays: list[float] = []
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    timeout = httpx.Timeout(10.0, read=None)
    params: dict[str, str | int] = {"extension": ext, "tail": 0}
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=timeout) as client,
            client.stream("GET", "/api/ext-debug/stream", params=params, headers=bearer(token)) as resp,
        ):
            data = ""
            async for line in resp.aiter_lines():
                if line.startswith("event: session"):
                    sys.stdout.write("ready\n")
                    sys.stdout.flush()
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    doc = json.loads(data)
                    if doc.get("stream") == "log":
                        delays.append((time.time() - float(doc["ts"])) * 1000.0)
                    data = ""
    except asyncio.CancelledError:
        pass
    finally:
        out.write_text(json.dumps(delays))


async def _calls(url: str, token: str, ext: str, n: int, conc: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=conc)
    ) as c:

        async def worker(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                resp = await c.get(f"/api/ext/{ext}/chatty?tag=b", headers=bearer(token))
                latencies.append((time.perf_counter() - started) * 1000.0)
                if resp.status_code != 200:
                    raise RuntimeError(f"call failed: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    return latencies


async def _compare(
    a: tuple[str, str], b: tuple[str, str], ext: str, calls: int, conc: int
) -> tuple[str, float, float, dict[str, float]]:
    """Alternating rounds of the same calls through gateway `a` and gateway `b`: per-call latency."""
    lat_a: list[float] = []
    lat_b: list[float] = []
    per_round = max(conc, calls // ROUNDS)
    for _ in range(ROUNDS):
        lat_a += await _calls(a[0], a[1], ext, per_round, conc)
        lat_b += await _calls(b[0], b[1], ext, per_round, conc)
    p50_a, p50_b = statistics.median(lat_a), statistics.median(lat_b)
    line = (
        f"p50 {p50_a:.2f} / {p50_b:.2f} ms, p99 {_pct(lat_a, 0.99):.2f} / {_pct(lat_b, 0.99):.2f} ms, "
        f"ratio p50 {p50_a / p50_b:.3f} ({len(lat_a)} calls each)"
    )
    spread = {"p99_ms": _pct(lat_a, 0.99), "baseline_p99_ms": _pct(lat_b, 0.99), "calls": len(lat_a)}
    return line, p50_a, p50_b, spread


async def _bench(on: Stack, off: Stack, calls: int, work: Path, out: list[str]) -> list[Row]:
    """Measure; appends the report lines to `out` and returns the summary rows."""
    rows: list[Row] = []
    ext = "com.bench.debug"
    await on.install("bench-on", ext)
    await off.install("bench-off", ext)
    tok_on = await on.token("bench-on", "ext:read", "ext:debug")
    tok_off = await off.token("bench-off", "ext:read", "ext:debug")
    a, b = (on.gateway.url, tok_on), (off.gateway.url, tok_off)
    # Warm both paths (component load, connections).
    await _calls(a[0], a[1], ext, 20, 1)
    await _calls(b[0], b[1], ext, 20, 1)
    for conc in (1, 8):
        line, p50_on, p50_off, spread = await _compare(a, b, ext, calls, conc)
        out.append(f"execute, {conc} caller(s), Redis sink, nobody watching vs memory sink: {line}")
        rows.append(
            Row(f"execute /chatty, Redis sink, no viewer, c={conc} (p50)", p50_on, "ms", p50_off,
                baseline_figure="memory sink", extra=spread)
        )  # fmt: skip

    delays_file = work / "delays.json"
    viewer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.debug_stream",
        "--follow",
        on.gateway.url,
        tok_on,
        ext,
        str(delays_file),
        stdout=asyncio.subprocess.PIPE,
    )
    assert viewer.stdout is not None
    await asyncio.wait_for(viewer.stdout.readline(), 30)
    streamed = 0
    try:
        for conc in (1, 8):
            line, p50_on, p50_off, spread = await _compare(a, b, ext, calls, conc)
            streamed += ROUNDS * (max(conc, calls // ROUNDS) // conc * conc)
            out.append(f"execute, {conc} caller(s), Redis sink + SSE viewer vs memory sink: {line}")
            rows.append(
                Row(f"execute /chatty, Redis sink + SSE viewer, c={conc} (p50)", p50_on, "ms", p50_off,
                    baseline_figure="memory sink", extra=spread)
            )  # fmt: skip
    finally:
        await asyncio.sleep(1.0)  # the last events on their way to the viewer
        viewer.terminate()
        await asyncio.wait_for(viewer.wait(), 30)
    delays: list[float] = json.loads(delays_file.read_text())
    out.append(
        f"guest log call -> SSE client: {len(delays)} of {streamed} events, "
        f"p50 {statistics.median(delays):.2f} ms p99 {_pct(delays, 0.99):.2f} ms max {max(delays):.2f} ms"
    )
    got = {"events": len(delays), "of": streamed, "max_ms": max(delays)}
    rows.append(Row("guest log call -> SSE client delay (p50)", statistics.median(delays), "ms", extra=got))
    rows.append(Row("guest log call -> SSE client delay (p99)", _pct(delays, 0.99), "ms", extra=got))
    return rows


def rows(calls: int = 600) -> list[Row]:
    """The figures of this module, for `python -m bench` (measured as `main` measures them)."""
    return _measure(calls, [])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.debug_stream")
    parser.add_argument("--calls", type=int, default=600, help="calls per side and concurrency level")
    parser.add_argument("--follow", nargs=4, metavar=("URL", "TOKEN", "EXT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.follow:
        url, token, ext, out = args.follow
        asyncio.run(_follow(url, token, ext, Path(out)))
        return
    lines: list[str] = []
    _measure(args.calls, lines)
    print("\n".join(lines))


def _measure(calls: int, out: list[str]) -> list[Row]:
    guest = python_guest(GUEST_DIR)
    with tempfile.TemporaryDirectory(prefix="bench-debug-") as tmp:
        work = Path(tmp)
        with services(work) as (server_url, limiter_url):
            db_url = server_url.rsplit("/", 1)[0] + f"/extplane_bench_debug_{os.getpid()}"
            asyncio.run(ensure_database(db_url))
            asyncio.run(migrate(db_url))
            redis = RedisServer(work)
            redis.start()
            runner_on = start_runner(work / "on", db_url, threads=2, debug_redis_url=redis.url())
            runner_off = start_runner(work / "off", db_url, threads=2, debug_sink="memory")
            gateways = []
            try:
                common = {
                    "db_url": db_url,
                    "redis_url": limiter_url,
                    "debug_redis_url": redis.url(),
                    "rate_limit_rps": "1e9",
                    "rate_limit_burst": "1000000000",
                }
                gw_on = start_gateway(work, runner_url=runner_on.url, **common)
                gateways.append(gw_on)
                gw_off = start_gateway(work, runner_url=runner_off.url, **common)
                gateways.append(gw_off)
                on = Stack(
                    db_url=db_url, redis=redis, runner=runner_on, gateway=gw_on, work=work, guest=guest
                )
                off = Stack(
                    db_url=db_url, redis=redis, runner=runner_off, gateway=gw_off, work=work, guest=guest
                )
                return asyncio.run(_bench(on, off, calls, work, out))
            finally:
                for gw in gateways:
                    gw.stop()
                runner_on.stop()
                runner_off.stop()
                redis.kill()
                asyncio.run(_drop(server_url, db_url))


async def _drop(server_url: str, db_url: str) -> None:
    import asyncpg

    name = db_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
