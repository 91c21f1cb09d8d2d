"""Load through the gateway: `python -m bench.load [--calls 20000] [--concurrency 64]`.

Starts its own full stack (cli.devstack.Stack with worker, runner, operator API and gateway, on free
ports, under a temporary root; EXT_DATABASE_URL / EXT_REDIS_URL / EXT_TEMPORAL_ADDRESS, when set, are
used as by `extctl dev up`), or uses a running one when EXT_GATEWAY_URL, EXT_API_URL and
EXT_ADMIN_TOKEN are set (e.g. `set -a; . .extplane/dev.env`). Through the operator API it trusts a key,
publishes and installs the tiny component (tests/bundles/fixtures/handler.wasm: answers 200, no
build needed) and raises the install's rate limit (`PUT .../limits`). Then `--calls` GETs at
`--concurrency` through the gateway over raw HTTP/1.1 keep-alive connections (one per worker
coroutine; the generator must stay cheap: on a small machine it shares the CPU with the gateway and
the runner), after a short warm-up that is not counted.

Prints throughput, the latency distribution (p50/p90/p99/max) and the count of each status. Every
status other than 200 is an unexpected error; the exit status is 1 when there is any.
`rows()` gives the figures to `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.report import Row
from tests.faults.harness import FaultStack

TENANT = "load"
EXTENSION = "com.bench.load"
WARMUP = 500


@dataclass
class Result:
    calls: int
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per completed call
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", "conn_error", ...

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


class Conn:
    """One HTTP/1.1 keep-alive connection: GET, read the status and the body (length or chunked)."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed by the gateway")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif key == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def _request(gateway: str, token: str, path: str) -> tuple[str, int, bytes]:
    parts = urlsplit(gateway)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    req = (
        f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {token}\r\n"
        f"x-extplane-tenant: {TENANT}\r\naccept: */*\r\n\r\n"
    ).encode()
    return host, port, req


async def hammer(gateway: str, token: str, path: str, calls: int, concurrency: int) -> Result:
    host, port, req = _request(gateway, token, path)
    result = Result(calls=calls, concurrency=concurrency, seconds=0.0)
    left = calls

    async def worker() -> None:
        nonlocal left
        conn = Conn(host, port, req)
        try:
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                try:
                    status = str(await conn.get())
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                    status = f"conn_error:{type(exc).__name__}"
                    await conn.close()
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] += 1
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


async def _prepare(fs: FaultStack) -> str:
    """Trust, publish, install (idempotent on a reused stack) and lift the rate limit."""
    await fs.ready_extension(TENANT, EXTENSION, rps=1e9, burst=1_000_000_000)
    return f"/api/ext/{EXTENSION}/hello"


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    saved = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


async def measure(calls: int, concurrency: int) -> Result:
    existing = {k: os.environ.get(k, "") for k in ("EXT_GATEWAY_URL", "EXT_API_URL", "EXT_ADMIN_TOKEN")}
    root = Path(tempfile.mkdtemp(prefix="extplane-load-"))
    fs: FaultStack | None = None
    try:
        if all(existing.values()):
            stack = FaultStack.attach(existing, root / "work")
        else:
            environ = dict(os.environ)
            for key in ("EXT_GATEWAY_URL", "EXT_API_URL", "EXT_RUNNER_URL", "EXT_ADMIN_TOKEN"):
                environ.pop(key, None)
            fs = stack = FaultStack(root / "stack", environ)
            # One tenant's throughput is measured: no fair share between tenants (the apps inherit
            # this process's environment; a stack attached to keeps its own setting).
            with _env("EXT_TENANT_SHARE", "1"):
                await asyncio.to_thread(fs.up)  # Stack is sync (it runs its own event loop)
        path = await _prepare(stack)
        env = stack.env
        warm = await hammer(env["EXT_GATEWAY_URL"], env["EXT_ADMIN_TOKEN"], path, WARMUP, concurrency)
        if warm.errors:
            raise RuntimeError(f"warm-up failed: {dict(warm.statuses)}")
        return await hammer(env["EXT_GATEWAY_URL"], env["EXT_ADMIN_TOKEN"], path, calls, concurrency)
    finally:
        if fs is not None:
            await asyncio.to_thread(fs.down)
        shutil.rmtree(root, ignore_errors=True)


def report(r: Result) -> str:
    ms = 1e3
    lines = [
        f"gateway load: {r.calls} calls at concurrency {r.concurrency} in {r.seconds:.1f} s "
        f"(tiny component, GET through gateway -> runner -> guest)",
        f"  throughput  {r.throughput:,.0f} calls/s",
        f"  latency ms  p50 {r.pct(0.5) * ms:.1f}  p90 {r.pct(0.9) * ms:.1f}  "
        f"p99 {r.pct(0.99) * ms:.1f}  max {max(r.latencies) * ms:.1f}",
        "  statuses    " + ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items())),
        f"  unexpected errors: {r.errors}",
    ]
    return "\n".join(lines)


def _rows(r: Result) -> list[Row]:
    c = f"c={r.concurrency}, n={r.calls}"
    return [
        Row(f"gateway load throughput ({c})", r.throughput, "calls/s"),
        Row(f"gateway load p50 ({c})", r.pct(0.5) * 1e3, "ms"),
        Row(f"gateway load p90 ({c})", r.pct(0.9) * 1e3, "ms"),
        Row(f"gateway load p99 ({c})", r.pct(0.99) * 1e3, "ms"),
        Row(f"gateway load max ({c})", max(r.latencies) * 1e3, "ms"),
        Row(f"gateway load unexpected errors ({c})", float(r.errors), "calls"),
    ]


def rows(calls: int = 20_000, concurrency: int = 64) -> list[Row]:
    """The figures of this module for `python -m bench`: (figure, value, unit, baseline, ratio) rows.
    Raises when any call got an unexpected status, so the suite reports the bench as failed."""
    r = asyncio.run(measure(calls, concurrency))
    sys.stderr.write(report(r) + "\n")
    if r.errors:
        raise RuntimeError(f"{r.errors} unexpected errors: {dict(r.statuses)}")
    return _rows(r)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    r = asyncio.run(measure(args.calls, args.concurrency))
    sys.stdout.write(report(r) + "\n")
    sys.exit(1 if r.errors else 0)


if __name__ == "__main__":
    main()
