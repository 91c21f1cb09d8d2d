"""Deadlines and overload through a real stack: `python -m bench.deadlines [--timeout-ms 1000]
[--spins 20] [--flood 90] [--flood-seconds 8]`.

Starts `python -m runner` (defaults: 4 threads, queue 64, tenant share 0.5) and `python -m api.gateway`
(1 worker) on Postgres/Redis from EXT_DATABASE_URL / EXT_REDIS_URL (else an embedded pair), with the
gateway test guest (tests/gateway/fixtures/gwguest.wasm: `/loop` spins until its deadline) installed
for four tenants. Clients are raw keep-alive connections; load comes from a separate process so the
measuring client's event loop is never delayed by it.

1. Deadline lateness: sequential `GET /loop` calls with `limits.timeout_ms` = T through the gateway,
   alone and while 8 connections of another tenant keep the runner busy with short calls:
   answer time − T, p50 / p99 / max.
2. Flood: one tenant (default rate limit) keeps `--flood` connections calling `/loop` (T = 3 s) for
   `--flood-seconds`, retrying at once whatever the answer, while a victim tenant calls a short
   endpoint one call at a time; the victim's p50 / p99 and both tenants' statuses, then how long the
   runner takes to hold no execution once the flood's connections are gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

from api.auth import token_hash
from bench._flood import RawGet
from bench.gateway import _drop, process, services
from bench.report import Row
from core.migrations import ensure_database, migrate
from tests.gateway.conftest import free_port, store_bundle

ROOT = Path(__file__).resolve().parents[1]
AUTH = "bench-runner-auth-0123456789abcdef"
GWGUEST = (ROOT / "tests" / "gateway" / "fixtures" / "gwguest.wasm").read_bytes()
EXTENSION = "com.bench.spin"


async def _seed(db_url: str, digest: str, tenants: dict[str, tuple[int, float | None]]) -> dict[str, str]:
    """One install of the spin guest per tenant (tenant -> (timeout_ms, rps or None for the default
    rate limit)); returns tenant -> token."""
    tokens: dict[str, str] = {}
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO trust_keys (key_id, publisher, public_key_pem) VALUES ('ed25519:b', 'b', 'x')"
            " ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                    verified_at) VALUES ($1, 1, 'k', 's', 'ed25519:b', now())""",
            digest,
        )
        ext = await conn.fetchval(
            "INSERT INTO extensions (name, publisher) VALUES ($1, 'b') RETURNING id", EXTENSION
        )
        for tenant, (timeout_ms, rps) in tenants.items():
            ver = await conn.fetchval(
                """INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id)
                   VALUES ($1, $2, $3, $4, 'bench') RETURNING id""",
                ext,
                f"1.0.{len(tokens)}",
                digest,
                json.dumps({"limits": {"timeout_ms": timeout_ms, "memory_mb": 64}}),
            )
            for method, path in (("GET", "/loop"), ("GET", "/reflect/status")):
                await conn.execute(
                    "INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)",
                    ver,
                    method,
                    path,
                )
            await conn.execute(
                """INSERT INTO installs (tenant_id, extension_id, version_id, status,
                                         rate_limit_rps, rate_limit_burst)
                   VALUES ($1, $2, $3, 'active', $4, $5)""",
                tenant,
                ext,
                ver,
                rps,
                None if rps is None else int(rps),
            )
            token = "bench_" + uuid.uuid4().hex
            await conn.execute(
                "INSERT INTO api_tokens (token_hash, tenant_id, scopes)"
                " VALUES ($1, $2, '{ext:read,ext:write}')",
                token_hash(token),
                tenant,
            )
            tokens[tenant] = token
    finally:
        await conn.close()
    return tokens


def _pcts(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        ordered[-1],
    )


def _get(gw: str, token: str, path: str) -> RawGet:
    return RawGet(gw, token, f"/api/ext/{EXTENSION}{path}")


def _load(gw: str, token: str, path: str, conns: int, seconds: float) -> subprocess.Popen[str]:
    """bench._flood in its own process; returns once all its connections are open."""
    argv = [sys.executable, "-m", "bench._flood", gw, token, f"/api/ext/{EXTENSION}{path}"]
    proc = subprocess.Popen([*argv, str(conns), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the load process did not start")
    return proc


def _statuses(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = proc.communicate(timeout=120)
    return dict(json.loads(out or "{}"))


async def _lateness(gw: str, token: str, timeout_s: float, spins: int) -> list[float]:
    """answer time - T (ms) of `spins` sequential /loop calls."""
    late: list[float] = []
    conn = _get(gw, token, "/loop")
    for _ in range(spins):
        t0 = time.perf_counter()
        status = await conn.call()
        late.append((time.perf_counter() - t0 - timeout_s) * 1000.0)
        assert status == "504 handler_timeout", f"a spin got {status}"
    conn.close()
    return late


async def _admitted(runner: str) -> int:
    async with httpx.AsyncClient(timeout=5) as c:
        return int((await c.get(runner + "/healthz")).json()["admitted"])


async def _victim(gw: str, token: str, seconds: float) -> tuple[list[float], Counter[str]]:
    """Short calls, one at a time, for `seconds` (after the flood has had 1 s to fill every slot)."""
    await asyncio.sleep(1.0)
    stop = time.perf_counter() + seconds - 1.5
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    conn = _get(gw, token, "/reflect/status")
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        statuses[await conn.call()] += 1
        latencies.append((time.perf_counter() - t0) * 1000.0)
        await asyncio.sleep(0.05)
    conn.close()
    return latencies, statuses


async def _idle_after(runner: str) -> float:
    """Seconds until the runner holds no execution."""
    gone = time.perf_counter()
    while await _admitted(runner) > 0 and time.perf_counter() - gone < 60:
        await asyncio.sleep(0.02)
    return time.perf_counter() - gone


def _run(
    work: Path, server_url: str, redis_url: str, args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    out: list[str] = []
    rows: list[Row] = []
    db_url = server_url.rsplit("/", 1)[0] + f"/extplane_bench_dl_{os.getpid()}"
    asyncio.run(ensure_database(db_url))
    asyncio.run(migrate(db_url))
    data_dir = work / "data"
    digest = store_bundle(data_dir, GWGUEST, EXTENSION, work)
    # The flood and the victim keep the default rate limit (EXT_RATE_LIMIT_RPS / _BURST), as every
    # tenant has one: 90 calls of 3 s stay below it, a flood retrying its shed calls at once does not.
    tenants = {
        "spin": (args.timeout_ms, 1e9),
        "busy": (3000, 1e9),
        "flood": (3000, None),
        "victim": (3000, None),
    }
    tokens = asyncio.run(_seed(db_url, digest, tenants))
    base = {**os.environ, "EXT_ENV": "test", "EXT_LOG_LEVEL": "warning", "EXT_RUNNER_AUTH": AUTH}
    runner_port, gw_port = free_port(), free_port()
    runner = f"http://127.0.0.1:{runner_port}"
    gw = f"http://127.0.0.1:{gw_port}"
    runner_env = {
        **base,
        "EXT_PORT": str(runner_port),
        "EXT_DATA_DIR": str(data_dir),
        "EXT_DATABASE_URL": db_url,
        "EXT_DEBUG_SINK": "memory",
        "EXT_FUEL_PER_MS": "1000000000",  # the spin must meet its deadline, not its fuel
    }
    gw_env = {**base, "EXT_DATABASE_URL": db_url, "EXT_REDIS_URL": redis_url, "EXT_RUNNER_URL": runner}
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([sys.executable, "-m", "runner"], runner_env, runner + "/healthz"))
        stack.enter_context(
            process([sys.executable, "-m", "api.gateway", "--port", str(gw_port)], gw_env, gw + "/healthz")
        )
        t = args.timeout_ms / 1000.0
        out.append(
            f"\nDeadline lateness through the gateway: answer time - T, T = {args.timeout_ms} ms,"
            f" {args.spins} calls"
        )
        for label, bg in (("idle", 0), ("8 busy connections", 8)):
            busy = _load(gw, tokens["busy"], "/reflect/status", bg, args.spins * (t + 1) + 5) if bg else None
            late = asyncio.run(_lateness(gw, tokens["spin"], t, args.spins))
            if busy is not None:
                busy.terminate()
                busy.wait()
            p50, p99, mx = _pcts(late)
            out.append(f"  {label:<20} p50 {p50:7.1f}  p99 {p99:7.1f}  max {mx:7.1f} ms")
            rows.append(
                Row(
                    f"deadline lateness, T={args.timeout_ms} ms, {label} (p50)",
                    p50,
                    "ms",
                    extra={"p99_ms": p99, "max_ms": mx, "calls": args.spins},
                )
            )
        out.append(f"\nFlood: {args.flood} x /loop (T = 3 s) by one tenant, {args.flood_seconds:.0f} s")
        flood = _load(gw, tokens["flood"], "/loop", args.flood, args.flood_seconds)
        victim_ms, victim_status = asyncio.run(_victim(gw, tokens["victim"], args.flood_seconds))
        # The flood's clients stop; their calls in flight are abandoned when the process exits.
        flood_status = _statuses(flood)
        idle_s = asyncio.run(_idle_after(runner))
        p50, p99, mx = _pcts(victim_ms)
        out.append(
            f"  victim: {len(victim_ms)} calls, p50 {p50:.1f}  p99 {p99:.1f}  max {mx:.1f} ms,"
            f" statuses {dict(victim_status)}"
        )
        out.append(f"  flood statuses {flood_status}")
        out.append(f"  runner back to 0 admitted {idle_s:.2f} s after the flood's clients left")
        rows.append(
            Row(
                "victim p50 during a one-tenant flood",
                p50,
                "ms",
                extra={"p99_ms": p99, "max_ms": mx, "victim": dict(victim_status), "flood": flood_status},
            )
        )
        rows.append(Row("runner idle again after an abandoned flood", idle_s, "s"))
    asyncio.run(_drop(db_url))
    return rows, out


def rows(timeout_ms: int = 1000, spins: int = 20, flood: int = 90, flood_seconds: float = 8.0) -> list[Row]:
    args = argparse.Namespace(timeout_ms=timeout_ms, spins=spins, flood=flood, flood_seconds=flood_seconds)
    return _collect(args)[0]


def _collect(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    with tempfile.TemporaryDirectory(prefix="bench-dl-") as tmp:
        work = Path(tmp)
        with services(work) as (server_url, redis_url):
            return _run(work, server_url, redis_url, args)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deadlines")
    parser.add_argument("--timeout-ms", type=int, default=1000)
    parser.add_argument("--spins", type=int, default=20)
    parser.add_argument("--flood", type=int, default=90)
    parser.add_argument("--flood-seconds", type=float, default=8.0)
    print("\n".join(_collect(parser.parse_args())[1]))


if __name__ == "__main__":
    main()
