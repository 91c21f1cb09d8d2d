"""Gateway benchmark: `python -m bench.gateway [--duration S] [--workers W] [--runners R]
[--runner-cpus spread|none|LIST] [--colocated K,...] [--skip-python-guest]`.

Measured in one run, on this machine, with the same load generator:

1. runner hop transport, in-process: `httpx.AsyncClient` (keep-alive) vs the gateway's RunnerClient
   (raw HTTP/1.1 keep-alive) posting one execute envelope to `python -m runner` — the choice; and
   the same for the limiter's Redis round trip: redis-py EVALSHA vs api.gateway.resp.RespClient.
2. end to end, requests/s and p50/p99 at 1, 8, 32 and 64 concurrent connections:
   * a bare uvicorn hello-world (plain ASGI, uvloop + httptools, 1 worker) — the floor;
   * a uvicorn + Starlette hello-world (same server flags) — the floor of a Python web framework;
   * the runner alone (`POST /v1/execute`), to separate the guest's cost from the gateway's;
   * tenant → `python -m api.gateway` → `python -m runner` → guest, for the C echo fixture and the
     Python hello sample's `/echo` endpoint, once over the HTTP hop and once over the framed hop
     (a second gateway with `frame://` runner URLs to the same runners);
   * tenant → co-located gateway (EXT_RUNNER_URL=local:, the guest in the gateway's process) for
     each K of `--colocated` (default 1 and one per CPU): K `python -m api.gateway --reuse-port`
     processes on one port, pinned one CPU each like the runners;
   and the ratio of each to both floors (req/s), p50/p99 vs the Starlette floor's. The targets are
   interleaved: at each concurrency every target runs once, in an order rotated per level
   (bench/_interleave.py), so machine noise hits the floors and the subjects alike; SETTLE_S
   between runs lets the calls a run left in flight drain from the runner first.

Runner processes are pinned one CPU each (EXT_CPUS, core.affinity), from the last CPU down
(`--runner-cpus spread`, the layout docs/deploy.md recommends); `none` leaves them unpinned and a CPU
list pins every runner to it, to measure the difference.

Load: `wrk` when installed (`apt-get install -y wrk`); otherwise the bench says so and uses a Python
asyncio keep-alive generator (which itself needs CPU, so its numbers are lower). Services: Postgres
and Redis from EXT_DATABASE_URL / EXT_REDIS_URL, else an embedded dev stack started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio

from api.auth import token_hash
from api.gateway.ratelimit import TOKEN_BUCKET, bucket_key
from api.gateway.resp import RespClient
from api.gateway.runner_client import RunnerClient
from bench._interleave import Floors, Result, e2e_rows, schedule, tolerable
from bench.report import Row
from cli.devstack.stack import Stack
from core.migrations import ensure_database, migrate
from tests.gateway.conftest import free_port, wait_http
from tests.runner.runner_helpers import artifact_digests, manifest, precompiled_record, publish
from tests.runner.runner_helpers import python_guest as build_python_guest

ROOT = Path(__file__).resolve().parents[1]
AUTH = "bench-runner-auth-0123456789abcdef"
CONCURRENCY = (1, 8, 32, 64)  # end to end
TRANSPORT_CONCURRENCY = (1, 8, 32)  # the in-process hop comparison
SETTLE_S = 1.0  # pause between two end-to-end load runs (see _run)
HELLO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""
STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", hello)])
"""
BARE = "bare uvicorn hello (ASGI)"
STARLETTE = "uvicorn + Starlette hello"


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    method: str = "GET"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------- load
def run_wrk(target: Target, conns: int, duration: float, work: Path) -> Result:
    script = work / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    lines = [f"wrk.method = {json.dumps(target.method)}", f"wrk.body = {json.dumps(target.body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in target.headers]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s", "--latency", "-s", str(script), target.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    failed_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    failed = int(failed_match.group(1)) if failed_match else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if not tolerable(failed, requests):
        raise RuntimeError(f"{target.name}: non-2xx answers under load:\n{out}")
    if failed:
        print(f"{target.name} c={conns}: {failed} of {requests} answers non-2xx (counted)", file=sys.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(rps, _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), failed)


def _wrk_ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _py_load(target: Target, conns: int, duration: float) -> Result:
    """Keep-alive HTTP/1.1 clients on raw streams: cheap enough to leave CPU to the servers."""
    parts = httpx.URL(target.url)
    head = f"{target.method} {parts.raw_path.decode()} HTTP/1.1\r\nhost: {parts.netloc.decode()}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in target.headers)
    request = (head + f"content-length: {len(target.body)}\r\n\r\n").encode() + target.body
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        while time.perf_counter() < stop:
            t = time.perf_counter()
            writer.write(request)
            status_and_head = await reader.readuntil(b"\r\n\r\n")
            if not status_and_head.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(f"{target.name}: {status_and_head[:60]!r}")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", status_and_head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t) * 1000.0)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        len(latencies) / elapsed, statistics.median(latencies), latencies[int(0.99 * len(latencies))]
    )


def measure(target: Target, conns: int, duration: float, work: Path) -> Result:
    if shutil.which("wrk"):
        return run_wrk(target, conns, duration, work)
    return asyncio.run(_py_load(target, conns, duration))


# ------------------------------------------------------------------------------------ processes
@contextmanager
def process(argv: list[str], env: dict[str, str], health: str) -> Iterator[None]:
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(health, proc=proc, deadline_s=60)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def services(work: Path) -> Iterator[tuple[str, str]]:
    """(Postgres server URL, Redis URL): from the environment, else an embedded stack for this run."""
    db, redis = os.environ.get("EXT_DATABASE_URL"), os.environ.get("EXT_REDIS_URL")
    if db and redis:
        yield db, redis
        return
    stack = Stack(work / "stack", with_apps=False, auto_ports=True)
    info = stack.up()
    try:
        yield info.env["EXT_DATABASE_URL"], info.env["EXT_REDIS_URL"]
    finally:
        stack.down()


def seed_registry(
    work: Path, server_url: str, *, database: str, python_guest: bool
) -> tuple[str, Path, dict[str, str], str]:
    """A fresh, migrated database with the C echo (and the Python hello) published into `work/data`
    and installed for one tenant: (database url, data dir, extension -> content hash, token)."""
    db_url = server_url.rsplit("/", 1)[0] + f"/{database}"
    asyncio.run(ensure_database(db_url))
    asyncio.run(migrate(db_url))
    data_dir = work / "data"
    guests = {"com.bench.echo-c": (ROOT / "tests" / "runner" / "fixtures" / "echo.wasm").read_bytes()}
    artifacts: dict[str, bytes | None] = {"com.bench.echo-c": None}
    if python_guest:
        wasm, cwasm = build_python_guest(ROOT / "examples" / "hello")
        guests["com.bench.hello-py"], artifacts["com.bench.hello-py"] = wasm, cwasm
    hashes = {
        name: publish(data_dir, wasm, manifest(name=name), work, artifact=artifacts[name])
        for name, wasm in guests.items()
    }
    return db_url, data_dir, hashes, asyncio.run(seed(db_url, hashes))


async def seed(db_url: str, installs: dict[str, str]) -> str:
    """One tenant with the given installs (extension -> content hash), no rate limit; returns a token."""
    token = "ext_bench_" + uuid.uuid4().hex  # the shape api.auth.well_formed accepts
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO trust_keys (key_id, publisher, public_key_pem) VALUES ('ed25519:bench', 'b', 'x')"
        )
        for name, digest in installs.items():
            await conn.execute(
                """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                        verified_at, precompiled)
                   VALUES ($1, 1, 'k', 's', 'ed25519:bench', now(), $2::jsonb)""",
                digest,
                json.dumps(precompiled_record(digest)),  # the runner uses an artifact only against it
            )
            ext = await conn.fetchval(
                "INSERT INTO extensions (name, publisher) VALUES ($1, 'b') RETURNING id", name
            )
            ver = await conn.fetchval(
                """INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id)
                   VALUES ($1, '1.0.0', $2, '{"limits": {"timeout_ms": 5000}}'::jsonb, 'bench')
                   RETURNING id""",
                ext,
                digest,
            )
            await conn.execute(
                "INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, 'POST', '/echo')", ver
            )
            await conn.execute(
                """INSERT INTO installs (tenant_id, extension_id, version_id, status, granted_capabilities,
                                         rate_limit_rps, rate_limit_burst)
                   VALUES ('bench', $1, $2, 'active', '{cap:log.emit,cap:context.read}', 1e9, 1000000000)""",
                ext,
                ver,
            )
        await conn.execute(
            """INSERT INTO api_tokens (token_hash, tenant_id, scopes)
               VALUES ($1, 'bench', '{ext:read,ext:write}')""",
            token_hash(token),
        )
    finally:
        await conn.close()
    return token


def envelope(digest: str, name: str) -> bytes:
    return json.dumps(
        {
            "context": {
                "tenant_id": "bench",
                "extension": name,
                "install_id": str(uuid.uuid4()),
                "version": "1.0.0",
                "content_hash": digest,
                "request_id": "bench",
            },
            "request": {
                "method": "POST",
                "path": "/echo",
                "body_b64": base64.b64encode(b'{"hi":1}').decode(),
            },
            "capabilities": {"granted": ["cap:log.emit", "cap:context.read"]},
            "artifacts": artifact_digests(digest),  # as the gateway sends them
        }
    ).encode()


async def _drive(one: Callable[[], Awaitable[None]], conns: int, duration: float) -> Result:
    """`conns` concurrent loops calling `one` for `duration` seconds (after a short warm-up)."""
    for _ in range(20):
        await one()
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await one()
            latencies.append((time.perf_counter() - t) * 1000.0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        len(latencies) / elapsed, statistics.median(latencies), latencies[int(0.99 * len(latencies))]
    )


async def _with_httpx(runner_url: str, env_bytes: bytes, conns: int, duration: float) -> Result:
    headers = {"x-runner-auth": AUTH, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=runner_url, limits=httpx.Limits(max_keepalive_connections=64)) as c:

        async def one() -> None:
            r = await c.post("/v1/execute", content=env_bytes, headers=headers)
            assert r.status_code == 200, r.text

        return await _drive(one, conns, duration)


async def _with_raw(runner_url: str, env_bytes: bytes, conns: int, duration: float) -> Result:
    client = RunnerClient(runner_url, auth=AUTH)

    async def one() -> None:
        r = await client.execute(env_bytes, request_id="bench", timeout_s=10)
        assert r.status == 200, r.body

    try:
        return await _drive(one, conns, duration)
    finally:
        await client.aclose()


async def limiter_rows(redis_url: str, duration: float) -> list[tuple[str, int, Result]]:
    """The limiter's one Redis round trip: redis-py (register_script/EVALSHA) vs api.gateway.resp."""
    rows: list[tuple[str, int, Result]] = []
    args = [repr(1e9), str(10**9)]
    for conns in (1, 8):
        client = redis.asyncio.Redis.from_url(redis_url)
        script = client.register_script(TOKEN_BUCKET)

        async def with_redis_py(script: Any = script) -> None:
            await script(keys=[bucket_key("bench", "x")], args=args)

        rows.append(("redis-py EVALSHA", conns, await _drive(with_redis_py, conns, duration)))
        await client.aclose()
        resp = RespClient(redis_url, timeout_s=2.0)

        async def with_resp(resp: RespClient = resp) -> None:
            await resp.evalsha(TOKEN_BUCKET, [bucket_key("bench", "x")], args)

        rows.append(("RespClient EVALSHA", conns, await _drive(with_resp, conns, duration)))
        await resp.aclose()
    return rows


async def transport_rows(
    runner_url: str, env_bytes: bytes, duration: float, frame_url: str
) -> list[tuple[str, int, Result]]:
    """The hop alone, inside one process, as (baseline, subject) pairs: what a generic client costs vs
    the raw keep-alive client, and the raw HTTP client vs the framed hop to the same runner."""
    rows: list[tuple[str, int, Result]] = []
    for conns in TRANSPORT_CONCURRENCY:
        rows.append(("httpx.AsyncClient", conns, await _with_httpx(runner_url, env_bytes, conns, duration)))
        raw = await _with_raw(runner_url, env_bytes, conns, duration)
        rows.append(("RunnerClient (raw)", conns, raw))
        rows.append(("RunnerClient (raw)", conns, raw))
        rows.append(("RunnerClient (frame)", conns, await _with_raw(frame_url, env_bytes, conns, duration)))
    return rows


def rows(duration: int = 3, workers: int = 1, runners: int = 1, skip_python_guest: bool = False) -> list[Row]:
    """The figures of this module, for `python -m bench` (measured as `main` measures them)."""
    args = argparse.Namespace(
        duration=duration,
        workers=workers,
        runners=runners,
        runner_cpus="spread",
        colocated=default_colocated(),
        skip_python_guest=skip_python_guest,
    )
    return _collect(args)[0]


def _collect(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        work = Path(tmp)
        with services(work) as (server_url, redis_url):
            return _run(work, server_url, redis_url, args)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway")
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=1, help="gateway uvicorn workers")
    parser.add_argument("--runners", type=int, default=1, help="runner processes behind the gateway")
    parser.add_argument(
        "--runner-cpus",
        default="spread",
        help="'spread': runner i pinned to one CPU each, from the last down; 'none': unpinned; "
        "else an EXT_CPUS list for every runner",
    )
    parser.add_argument(
        "--colocated",
        type=_counts,
        default=default_colocated(),
        help="co-located gateway layouts to measure: comma-separated process counts ('' for none)",
    )
    parser.add_argument("--skip-python-guest", action="store_true", help="only the C echo guest")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install -y wrk): using the Python asyncio load generator instead")
    print("\n".join(_collect(args)[1]))


def _run(
    work: Path, server_url: str, redis_url: str, args: argparse.Namespace
) -> tuple[list[Row], list[str]]:
    """Measure; returns the summary rows and the detailed report lines."""
    out: list[str] = []
    summary: list[Row] = []
    db_url, data_dir, hashes, token = seed_registry(
        work, server_url, database=f"extplane_bench_{os.getpid()}", python_guest=not args.skip_python_guest
    )
    # One tenant drives every connection, so fair sharing is off (EXT_TENANT_SHARE=1.0): at the default
    # 0.5 the runner (4 threads + 64 queued) and the gateway (64 runner connections) would answer
    # 503 runner_busy past ~32 of one tenant's calls in flight, and c=64 would measure refusals.
    base_env = {
        **os.environ,
        "EXT_ENV": "test",
        "EXT_LOG_LEVEL": "warning",
        "EXT_RUNNER_AUTH": AUTH,
        "EXT_TENANT_SHARE": "1.0",
    }
    gw_port, hello_port, star_port = free_port(), free_port(), free_port()
    runner_ports = [free_port() for _ in range(args.runners)]
    runner_url = f"http://127.0.0.1:{runner_ports[0]}"  # the direct measurements use the first
    (work / "hello_app.py").write_text(HELLO_APP)
    (work / "starlette_app.py").write_text(STARLETTE_APP)
    uv_flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    hello_argv = [sys.executable, "-m", "uvicorn", "hello_app:app", "--port", str(hello_port), *uv_flags]
    star_argv = [sys.executable, "-m", "uvicorn", "starlette_app:app", "--port", str(star_port), *uv_flags]
    runner_env = {**base_env, "EXT_DATA_DIR": str(data_dir), "EXT_DATABASE_URL": db_url}
    gw_env = {
        **base_env,
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_RUNNER_URL": ",".join(f"http://127.0.0.1:{p}" for p in runner_ports),
    }
    gw_argv = [sys.executable, "-m", "api.gateway", "--port", str(gw_port), "--workers", str(args.workers)]
    # A second gateway over the framed hop (schema.runner_frames) to the same runners' EXT_FRAME_PORT.
    frame_ports = [free_port() for _ in runner_ports]
    gwf_port = free_port()
    gwf_env = {
        **gw_env,
        "EXT_RUNNER_URL": ",".join(f"frame://127.0.0.1:{p}" for p in frame_ports),
        "EXT_RUNNER_UI_URL": runner_url,
    }
    gwf_argv = [*gw_argv[:4], str(gwf_port), *gw_argv[5:]]
    hello_env = {**base_env, "PYTHONPATH": str(work)}
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(hello_argv, hello_env, f"http://127.0.0.1:{hello_port}/"))
        stack.enter_context(process(star_argv, hello_env, f"http://127.0.0.1:{star_port}/"))
        for i, (port, fport) in enumerate(zip(runner_ports, frame_ports, strict=True)):
            env = {
                **runner_env,
                "EXT_PORT": str(port),
                "EXT_FRAME_PORT": str(fport),
                "EXT_CPUS": runner_cpus(args.runner_cpus, i),
            }
            stack.enter_context(
                process([sys.executable, "-m", "runner"], env, f"http://127.0.0.1:{port}/healthz")
            )
        stack.enter_context(process(gw_argv, gw_env, f"http://127.0.0.1:{gw_port}/healthz"))
        stack.enter_context(process(gwf_argv, gwf_env, f"http://127.0.0.1:{gwf_port}/healthz"))
        local_ports: dict[int, int] = {}
        for count in args.colocated:
            local_ports[count] = port = free_port()
            for i in range(count):
                env = {
                    **runner_env,
                    **gw_env,
                    "EXT_RUNNER_URL": "local:",
                    "EXT_RUNNER_UI_URL": runner_url,
                    "EXT_CPUS": runner_cpus(args.runner_cpus, i),
                }
                argv = [sys.executable, "-m", "api.gateway", "--port", str(port), "--reuse-port"]
                stack.enter_context(process(argv, env, f"http://127.0.0.1:{port}/healthz"))
        targets = [
            Target(BARE, f"http://127.0.0.1:{hello_port}/"),
            Target(STARLETTE, f"http://127.0.0.1:{star_port}/"),
        ]
        for name, digest in hashes.items():
            body = envelope(digest, name)
            targets.append(
                Target(
                    f"runner alone, {name}",
                    runner_url + "/v1/execute",
                    "POST",
                    body,
                    (("x-runner-auth", AUTH), ("content-type", "application/json")),
                )
            )
            targets.append(
                Target(
                    f"gateway->runner, {name}",
                    f"http://127.0.0.1:{gw_port}/api/ext/{name}/echo",
                    "POST",
                    b'{"hi":1}',
                    (("authorization", f"Bearer {token}"), ("content-type", "application/json")),
                )
            )
            targets.append(
                Target(
                    f"gateway=frame=>runner, {name}",
                    f"http://127.0.0.1:{gwf_port}/api/ext/{name}/echo",
                    "POST",
                    b'{"hi":1}',
                    (("authorization", f"Bearer {token}"), ("content-type", "application/json")),
                )
            )
            for count, port in local_ports.items():
                targets.append(
                    Target(
                        f"gateway+runner x{count} (local:), {name}",
                        f"http://127.0.0.1:{port}/api/ext/{name}/echo",
                        "POST",
                        b'{"hi":1}',
                        (("authorization", f"Bearer {token}"), ("content-type", "application/json")),
                    )
                )
        out.append(
            "\nRunner CPUs (EXT_CPUS): "
            + ", ".join(
                f"runner {i}: {runner_cpus(args.runner_cpus, i) or 'any'}" for i in range(args.runners)
            )
        )
        out.append(
            f"\nTransport of the gateway->runner hop (in-process client, C echo guest, {args.duration}s each)"
        )
        first = next(iter(hashes.items()))
        transport = asyncio.run(
            transport_rows(
                runner_url, envelope(first[1], first[0]), args.duration, f"frame://127.0.0.1:{frame_ports[0]}"
            )
        )
        for kind, conns, r in [t for i, t in enumerate(transport) if i % 4 != 2]:  # the repeat out
            out.append(
                f"  {kind:<22} c={conns:<3} {r.rps:>8,.0f} req/s  p50 {r.p50_ms:6.2f}  p99 {r.p99_ms:7.2f} ms"
            )
        summary += _pairs("gateway->runner hop", transport)

        out.append(f"\nRate-limit round trip to Redis (in-process client, {args.duration}s each)")
        limiter = asyncio.run(limiter_rows(redis_url, args.duration))
        for kind, conns, r in limiter:
            out.append(
                f"  {kind:<22} c={conns:<3} {r.rps:>8,.0f} req/s  p50 {r.p50_ms:6.2f}  p99 {r.p99_ms:7.2f} ms"
            )
        summary += _pairs("rate-limit round trip", limiter)

        out.append(
            f"\nEnd to end ({'wrk' if shutil.which('wrk') else 'python loadgen'}, {args.duration}s each, "
            f"gateway workers={args.workers}, runner processes={args.runners})"
        )
        for target in targets:
            measure(target, 4, 1, work)  # warm caches, components and keep-alive pools
        results: dict[tuple[str, int], Result] = {}
        # Round-robin per concurrency level, first place rotating: noise hits floors and subjects alike.
        for conns, target in schedule(targets, CONCURRENCY):
            # wrk stops with up to `conns` calls in flight; the runner finishes them (a thread is busy
            # until the guest's next deadline check), so let them drain before the next target meets
            # a full runner and gets 503 runner_busy that belong to the previous one.
            time.sleep(SETTLE_S)
            results[(target.name, conns)] = measure(target, conns, args.duration, work)
        out += _e2e_table([t.name for t in targets], results)
        summary += e2e_rows(
            [t.name for t in targets],
            CONCURRENCY,
            results,
            FLOORS,
            latency_of=lambda name: name.startswith("gateway"),  # both hops: HTTP and framed
        )
    asyncio.run(_drop(db_url))
    return summary, out


FLOORS = Floors(bare=BARE, framework=STARLETTE)


def default_colocated() -> list[int]:
    """One co-located gateway process, and one per usable CPU (docs/deploy.md's layout)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return sorted({1, cpus})


def _counts(value: str) -> list[int]:
    counts = [int(v) for v in value.split(",") if v.strip()]
    if any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"process counts must be >= 1, got {value!r}")
    return counts


def runner_cpus(how: str, index: int) -> str:
    """EXT_CPUS for runner `index`: "spread" gives each its own CPU from the last one down."""
    if how == "none" or not hasattr(os, "sched_getaffinity"):
        return ""  # unpinned (and all a platform without sched_setaffinity can do)
    if how == "spread":
        cpus = sorted(os.sched_getaffinity(0), reverse=True)
        return str(cpus[index % len(cpus)])
    return how


def _e2e_table(names: list[str], results: dict[tuple[str, int], Result]) -> list[str]:
    """The detailed report: one line per target and concurrency, ratios to both floors."""
    head = f"{'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'vs Starlette':>12}"
    out = [f"  {'target':<40} {head}"]
    for name in names:
        for conns in CONCURRENCY:
            r = results[(name, conns)]
            bare, star = results[(BARE, conns)], results[(STARLETTE, conns)]
            out.append(
                f"  {name:<40} {conns:>3} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
                f" {r.rps / bare.rps:>7.3f}x {r.rps / star.rps:>11.3f}x"
                + (f"  ({r.failed} non-2xx)" if r.failed else "")
            )
    out.append("  (req/s ratios at the same concurrency; targets interleaved round-robin per level)")
    return out


def _pairs(what: str, measured: list[tuple[str, int, Result]]) -> list[Row]:
    """Rows of (baseline, subject) pairs measured back to back: the subject's p50 vs the baseline's."""
    rows: list[Row] = []
    for (base_kind, conns, base), (kind, _c, r) in zip(measured[::2], measured[1::2], strict=True):
        rows.append(
            Row(
                f"{what}, {kind}, c={conns} (p50)",
                r.p50_ms * 1000.0,
                "µs",
                base.p50_ms * 1000.0,
                baseline_figure=base_kind,
                extra={"rps": r.rps, "baseline_rps": base.rps, "p99_ms": r.p99_ms},
            )
        )
    return rows


async def _drop(db_url: str) -> None:
    admin_url = db_url.rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
