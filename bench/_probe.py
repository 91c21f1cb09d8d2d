"""The benign caller of `bench.hostile`, in a process of its own.

Sequential `GET` calls with one tenant's token over one keep-alive connection, until told to stop:
the latency another tenant feels while an attack runs. It runs in its own process so that the
attack's own work (building a 64 MiB header, thousands of coroutines) never shares an event loop or
the GIL with it: what it measures is the stack, not the bench.

Imports only the standard library and httpx, so a spawned child starts quickly.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx

PAUSE_S = 0.01


@dataclass
class ProbeResult:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: dict[str, int] = field(default_factory=dict)

    def p50_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2] * 1e3

    @property
    def failures(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")


async def _loop(base_url: str, token: str, path: str, conn: Connection) -> ProbeResult:
    result = ProbeResult()
    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=15.0
    ) as client:
        first = True
        while first or not conn.poll():
            t0 = time.perf_counter()
            try:
                status = str((await client.get(path)).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if first:
                conn.send("ready")  # the connection is open: what follows is the steady state
                first = False
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            await asyncio.sleep(PAUSE_S)
    return result


def _main(base_url: str, token: str, path: str, conn: Connection) -> None:
    result = asyncio.run(_loop(base_url, token, path, conn))
    conn.send((result.latencies, result.statuses))


class Probe:
    def __init__(self, base_url: str, token: str, path: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(base_url, token, path, child), daemon=True)

    async def start(self) -> None:
        self._proc.start()
        ready = await asyncio.to_thread(self._conn.recv)
        if ready != "ready":
            raise RuntimeError(f"probe did not start: {ready!r}")

    async def stop(self) -> ProbeResult:
        self._conn.send("stop")
        latencies, statuses = await asyncio.to_thread(self._conn.recv)
        await asyncio.to_thread(self._proc.join, 10)
        return ProbeResult(latencies, statuses)
