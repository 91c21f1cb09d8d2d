"""The framed hop's threads against a real runner process: a framed call runs on its connection's
thread, yet the HTTP and framed hops share one admission (EXT_THREADS guests at most, whichever hop
brought them); a framed caller that leaves gives up its queue slot; connections beyond
EXT_FRAME_MAX_CONNECTIONS are closed at accept; a runner stopping mid-call ends it and exits.

The runner has 2 threads and 4 queue slots; tenant share 1.0, so one tenant may take both threads.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema.runner_frames import ANSWER_HEAD, HELLO_OK, MAGIC, NONCE_BYTES, handshake_mac, request_frame
from tests.runner.runner_helpers import (
    AUTH,
    FIXTURES,
    RunnerProcess,
    envelope,
    free_port,
    manifest,
    publish,
    start_runner,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


class FrameConn:
    """A blocking framed-hop client, as the gateway's RunnerClient speaks it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def hello(self) -> None:
        challenge = self._exactly(len(MAGIC) + NONCE_BYTES)
        assert challenge.startswith(MAGIC)
        self.sock.sendall(handshake_mac(AUTH.encode(), challenge[len(MAGIC) :]))
        assert self._exactly(1) == HELLO_OK

    def send(self, env: dict[str, Any]) -> None:
        self.sock.sendall(request_frame(json.dumps(env).encode()))

    def answer(self) -> tuple[int, dict[str, Any]]:
        status, length = ANSWER_HEAD.unpack(self._exactly(ANSWER_HEAD.size))
        return status, json.loads(self._exactly(length))

    def at_eof(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {size} bytes")
            data += chunk
        return data


@pytest.fixture(scope="module")
def frame_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def runner(
    runner_db_url: str, tmp_path_factory: pytest.TempPathFactory, frame_port: int
) -> Iterator[RunnerProcess]:
    proc = start_runner(
        tmp_path_factory.mktemp("frame-threads"),
        runner_db_url,
        threads=2,
        queue_depth=4,
        tenant_share="1.0",
        max_fuel=10**16,
        frame_port=str(frame_port),
        frame_max_connections="6",
    )
    yield proc
    proc.stop()


@pytest.fixture
def chash(runner: RunnerProcess, work_dir: Path) -> str:
    return publish(runner.data_dir, (FIXTURES / "hostile.wasm").read_bytes(), manifest(), work_dir)


def spin(chash: str, timeout_ms: int, tenant: str = "t") -> dict[str, Any]:
    return envelope(chash, "/loop", tenant=tenant, limits={"fuel": 10**15, "timeout_ms": timeout_ms})


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    doc: dict[str, Any] = (await client.get("/healthz")).json()
    return doc


async def until(client: httpx.AsyncClient, *, admitted: int, deadline_s: float = 10) -> None:
    async def reached() -> bool:
        return bool((await health(client))["admitted"] == admitted)

    await eventually(reached, deadline_s=deadline_s)


def spinning(port: int, chash: str, timeout_ms: int) -> FrameConn:
    conn = FrameConn(port)
    conn.hello()
    conn.send(spin(chash, timeout_ms))
    return conn


async def test_a_framed_call_answers_as_http_does(runner: RunnerProcess, chash: str, frame_port: int) -> None:
    conn = FrameConn(frame_port)
    try:
        conn.hello()
        for body in (b"one", b"two"):  # a kept-alive connection serves call after call
            conn.send(envelope(chash, "/echo", body=body))
            status, answer = await asyncio.to_thread(conn.answer)
            assert status == 200, answer
            assert answer["status"] == 200 and answer["error"] is None
        async with runner.client() as client:
            scraped = (await client.get("/metrics")).text
        hits = re.search(r"^extplane_runner_component_cache_hits_total (\S+)$", scraped, re.M)
        assert hits is not None and float(hits.group(1)) >= 1, scraped  # the second call was a hit
        conn.send({"context": {}})
        status, answer = await asyncio.to_thread(conn.answer)
        assert (status, answer["error"]["code"]) == (400, "invalid_request")
    finally:
        conn.close()


async def test_framed_guests_hold_the_threads_http_calls_wait_for(
    runner: RunnerProcess, chash: str, frame_port: int
) -> None:
    async with runner.client() as client:
        await until(client, admitted=0)
        busy = [spinning(frame_port, chash, 1500) for _ in range(2)]
        try:
            await until(client, admitted=2)
            assert (await health(client))["running"] == 2
            scraped = (await client.get("/metrics")).text  # read from the admission when scraped
            assert "extplane_runner_in_flight 2.0" in scraped and "extplane_runner_queue_depth 0.0" in scraped
            # Both threads are taken by framed guests: an HTTP call queues, and its 300 ms run out.
            late = await client.post(
                "/v1/execute", json=envelope(chash, "/echo", body=b"hi", limits={"timeout_ms": 300})
            )
            assert late.status_code == 503, late.text
            assert late.json()["error"]["code"] == "runner_busy"
            for conn in busy:
                status, answer = await asyncio.to_thread(conn.answer)
                assert (status, answer["error"]["code"]) == (504, "deadline_exceeded")
        finally:
            for conn in busy:
                conn.close()
        await until(client, admitted=0)
        # ... and the other way round: HTTP guests hold both threads, a framed call waits.
        http_busy = [
            asyncio.create_task(client.post("/v1/execute", json=spin(chash, 1500))) for _ in range(2)
        ]
        await until(client, admitted=2)
        conn = FrameConn(frame_port)
        try:
            conn.hello()
            conn.send(envelope(chash, "/echo", body=b"hi", limits={"timeout_ms": 300}))
            status, answer = await asyncio.to_thread(conn.answer)
            assert (status, answer["error"]["code"]) == (503, "runner_busy")
        finally:
            conn.close()
        for resp in await asyncio.gather(*http_busy):
            assert resp.status_code == 504, resp.text


async def test_a_queued_framed_caller_that_leaves_gives_up_its_slot(
    runner: RunnerProcess, chash: str, frame_port: int
) -> None:
    async with runner.client() as client:
        await until(client, admitted=0)
        busy = [spinning(frame_port, chash, 3000) for _ in range(2)]
        try:
            await until(client, admitted=2)
            queued = spinning(frame_port, chash, 20_000)
            await until(client, admitted=3)
            queued.close()  # it leaves while waiting for a thread
            await until(client, admitted=2, deadline_s=2)
            assert (await health(client))["running"] == 2
        finally:
            for conn in busy:
                conn.close()  # and these leave mid-run: their guests end at the next check
        await until(client, admitted=0, deadline_s=5)


async def test_connections_past_the_limit_are_closed_at_accept(
    runner: RunnerProcess, frame_port: int
) -> None:
    held = [FrameConn(frame_port) for _ in range(6)]
    try:
        for conn in held:
            conn.hello()
        extra = FrameConn(frame_port)
        try:
            assert await asyncio.to_thread(extra.at_eof)  # no challenge: closed before the handshake
        finally:
            extra.close()
    finally:
        for conn in held:
            conn.close()

    def one_more() -> bool:
        conn = FrameConn(frame_port)
        try:
            conn.hello()
            return True
        except (EOFError, ConnectionError):
            return False
        finally:
            conn.close()

    async def served_again() -> bool:
        return await asyncio.to_thread(one_more)

    await eventually(served_again, deadline_s=5)


async def test_a_runner_stopping_mid_call_ends_the_call_and_exits(
    runner_db_url: str, tmp_path_factory: pytest.TempPathFactory, work_dir: Path
) -> None:
    port = free_port()
    proc = start_runner(
        tmp_path_factory.mktemp("frame-stop"), runner_db_url, max_fuel=10**16, frame_port=str(port)
    )
    try:
        chash = publish(proc.data_dir, (FIXTURES / "hostile.wasm").read_bytes(), manifest(), work_dir)
        conn = spinning(port, chash, 30_000)
        async with proc.client() as client:
            await until(client, admitted=1)
        started = time.monotonic()
        proc.proc.terminate()
        code = await asyncio.to_thread(proc.proc.wait, 25)
        # uvicorn shuts down, then re-raises the SIGTERM it caught (its exit status says so).
        assert code in (0, -signal.SIGTERM), proc.logs()
        assert "Traceback" not in proc.logs()
        # The guest was ended at its next check, not after its 30 s: the stop did not wait it out.
        assert time.monotonic() - started < 25
        with pytest.raises(EOFError):
            conn.answer()
        conn.close()
    finally:
        proc.stop()
