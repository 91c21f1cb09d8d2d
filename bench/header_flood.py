"""Another tenant's latency while one client sends 64 MiB request headers: `python -m bench.header_flood
[--duration S] [--size MiB]`.

Two gateways (one uvicorn worker each, so the attack and the tenant share one event loop) over the same
runner, Postgres and Redis:

* baseline: the gateway app under uvicorn's plain httptools protocol (what `python -m api.gateway`
  ran before the head bound): it buffers and parses the whole header;
* subject: `python -m api.gateway`, whose protocol refuses a head over EXT_GATEWAY_MAX_HEADER_BYTES
  (32 KiB) with 431 (api/gateway/protocol.py).

For each: the tenant's sequential calls (keep-alive, `POST /echo`, C echo guest) for `--duration`
seconds idle, then for `--duration` seconds while attack connections follow each other back to back
(each streams a request with a `--size` MiB `x-big` header and no token). Printed: the tenant's p50 /
p99 / max and its non-200 answers, and how many attacks were answered and how fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from pathlib import Path

import httpx

from bench.gateway import AUTH, ROOT, _drop, process, seed, services
from core.migrations import ensure_database, migrate
from tests.gateway.conftest import free_port
from tests.runner.runner_helpers import manifest, publish

CHUNK = 1024 * 1024


async def _attack(port: int, size: int) -> tuple[bytes, float]:
    """One attack connection: -> (the status line, seconds until the server answered or closed)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def pump() -> None:
        writer.write(b"POST /api/ext/com.bench.echo-c/echo HTTP/1.1\r\nhost: x\r\nx-big: ")
        block, sent = b"a" * CHUNK, 0
        with contextlib.suppress(ConnectionError, OSError):
            while sent < size:
                writer.write(block)
                await writer.drain()
                sent += len(block)
            writer.write(b"\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()

    pumping = asyncio.create_task(pump())
    try:
        with contextlib.suppress(ConnectionError, OSError):
            line = await asyncio.wait_for(reader.readline(), 120)
            return line.strip(), time.perf_counter() - started
        return b"(reset)", time.perf_counter() - started
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        writer.close()


async def _tenant(port: int, token: str, duration: float) -> tuple[list[float], dict[int, int]]:
    url = f"http://127.0.0.1:{port}/api/ext/com.bench.echo-c/echo"
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            started = time.perf_counter()
            resp = await client.post(url, headers=headers, content=b'{"hi":1}')
            latencies.append(time.perf_counter() - started)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
    return latencies, statuses


def _attacker(port: int, size: int, duration: float, out: Queue[list[tuple[bytes, float]]]) -> None:
    """Attack connections back to back for `duration` seconds, in a process of its own: the attacker's
    client-side work must not slow the tenant's client down and be mistaken for the gateway's stall."""

    async def loop() -> list[tuple[bytes, float]]:
        done: list[tuple[bytes, float]] = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            done.append(await _attack(port, size))
        return done

    out.put(asyncio.run(loop()))


async def _measure(port: int, token: str, duration: float, size: int) -> dict[str, object]:
    idle, _ = await _tenant(port, token, duration)
    spawn = multiprocessing.get_context("spawn")  # not fork: this process runs an event loop
    results: Queue[list[tuple[bytes, float]]] = spawn.Queue()
    attacker = spawn.Process(target=_attacker, args=(port, size, duration, results))
    attacker.start()
    busy, statuses = await _tenant(port, token, duration)
    attacks = await asyncio.to_thread(results.get, True, 300)
    await asyncio.to_thread(attacker.join, 60)
    return {
        "idle_p50_ms": statistics.median(idle) * 1000,
        "p50_ms": statistics.median(busy) * 1000,
        "p99_ms": sorted(busy)[int(len(busy) * 0.99)] * 1000,
        "max_ms": max(busy) * 1000,
        "calls": len(busy),
        "non_200": {s: n for s, n in statuses.items() if s != 200},
        "attacks": len(attacks),
        "attack_answers": sorted({a[0].decode("latin-1") for a in attacks}),
        "attack_answer_p50_ms": statistics.median(a[1] for a in attacks) * 1000 if attacks else 0.0,
    }


def _run(work: Path, server_url: str, redis_url: str, duration: float, size: int) -> list[str]:
    db_url = server_url.rsplit("/", 1)[0] + f"/extplane_bench_hf_{os.getpid()}"
    asyncio.run(ensure_database(db_url))
    asyncio.run(migrate(db_url))
    data_dir = work / "data"
    echo = (ROOT / "tests" / "runner" / "fixtures" / "echo.wasm").read_bytes()
    digest = publish(data_dir, echo, manifest(name="com.bench.echo-c"), work)
    token = asyncio.run(seed(db_url, {"com.bench.echo-c": digest}))
    base_env = {**os.environ, "EXT_ENV": "test", "EXT_LOG_LEVEL": "warning", "EXT_RUNNER_AUTH": AUTH}
    runner_port, plain_port, bounded_port = free_port(), free_port(), free_port()
    gw_env = {
        **base_env,
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_RUNNER_URL": f"http://127.0.0.1:{runner_port}",
    }
    plain = [sys.executable, "-m", "uvicorn", "api.gateway.app:create_app_from_env", "--factory"]
    plain += ["--port", str(plain_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    bounded = [sys.executable, "-m", "api.gateway", "--port", str(bounded_port), "--workers", "1"]
    out = [
        f"\nAnother tenant's sequential calls while {size // CHUNK} MiB request headers arrive back to back "
        f"(one gateway worker, {duration:g} s idle then {duration:g} s under attack, C echo guest)"
    ]
    results = {}
    with contextlib.ExitStack() as stack:
        runner_env = {**base_env, "EXT_DATA_DIR": str(data_dir), "EXT_DATABASE_URL": db_url}
        runner_env["EXT_PORT"] = str(runner_port)
        stack.enter_context(
            process([sys.executable, "-m", "runner"], runner_env, f"http://127.0.0.1:{runner_port}/healthz")
        )
        stack.enter_context(process(plain, gw_env, f"http://127.0.0.1:{plain_port}/healthz"))
        stack.enter_context(process(bounded, gw_env, f"http://127.0.0.1:{bounded_port}/healthz"))
        for name, port in (("plain httptools (before)", plain_port), ("bounded head (431)", bounded_port)):
            results[name] = asyncio.run(_measure(port, token, duration, size))
    for name, r in results.items():
        out.append(
            f"  {name:<26} idle p50 {r['idle_p50_ms']:6.2f} ms | under attack p50 {r['p50_ms']:8.2f}  "
            f"p99 {r['p99_ms']:8.2f}  max {r['max_ms']:8.2f} ms, {r['calls']} calls, non-200 {r['non_200']}"
        )
        out.append(
            f"  {'':<26} {r['attacks']} attacks answered {r['attack_answers']} "
            f"in p50 {r['attack_answer_p50_ms']:.1f} ms"
        )
    asyncio.run(_drop(db_url))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.header_flood")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds idle, then under attack")
    parser.add_argument("--size", type=int, default=64, help="MiB of the attack's one header")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        work = Path(tmp)
        with services(work) as (server_url, redis_url):
            print("\n".join(_run(work, server_url, redis_url, args.duration, args.size * CHUNK)))


if __name__ == "__main__":
    main()
