"""The gateway → runner hop under connection faults, against the real runner process.

A request the gateway has written may have run: it is never sent again (a POST would execute twice),
whatever the connection did afterwards. Only a connection that could not be opened fails over to the
next runner, and opening one is bounded by a connect timeout.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory, Registry, RunnerProcess

pytestmark = pytest.mark.integration


class CuttingProxy:
    """TCP proxy to the runner. With `cut` set it forwards the request, waits until the runner starts
    answering (so the request has certainly executed), then closes both sides without forwarding a
    byte of the answer: a connection that dies after the write and before the answer."""

    def __init__(self, upstream_port: int, scheme: str = "http") -> None:
        self.upstream_port = upstream_port
        self.scheme = scheme
        self.cut = False
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.url = f"{self.scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump_up() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def pump_down() -> None:
            while data := await up_reader.read(65536):
                if self.cut:
                    return
                writer.write(data)
                await writer.drain()

        up = asyncio.create_task(pump_up())
        try:
            await pump_down()
        except ConnectionError:
            pass
        finally:
            up.cancel()
            writer.close()
            up_writer.close()


async def _executions(runner: RunnerProcess) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(runner.url + "/metrics")).text
    return sum(float(v) for v in re.findall(r"^extplane_runner_executions_total\{[^}]*\} (\S+)$", text, re.M))


@pytest.fixture(params=["http", "frame"])
async def proxy(request: pytest.FixtureRequest, shared_runner: RunnerProcess) -> AsyncIterator[CuttingProxy]:
    """In front of the runner's HTTP port or its framed one (schema.runner_frames)."""
    port = shared_runner.frame_port if request.param == "frame" else shared_runner.port
    async with CuttingProxy(port, request.param) as p:
        yield p


async def test_a_written_request_is_never_resent(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess, proxy: CuttingProxy
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(tenant, "com.acme.hop")
    token = await registry.token(tenant, "ext:read", "ext:write")
    gw = await gateway_factory(runner_url=proxy.url)
    url = "/api/ext/com.acme.hop/reflect/items/1"
    first = await gw.call("POST", url, token, content=b"once")
    assert first.status_code == 200, first.text  # ... and its keep-alive connection is now pooled

    proxy.cut = True
    before = await _executions(shared_runner)
    cut = await gw.call("POST", url, token, content=b"once")
    assert cut.status_code == 502, cut.text
    assert cut.json()["error"] == "bad_gateway"
    # The runner counts an execution before it starts answering, and the proxy cuts only then: every
    # execution this call caused is counted by the time the gateway answers.
    assert await _executions(shared_runner) - before == 1, "the gateway sent the POST again"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A listening port whose accept queue is full: a connect to it hangs (SYNs are dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_a_hung_connect_fails_over_within_the_connect_timeout(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess, blackhole: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(tenant, "com.acme.hop", timeout_ms=5000)
    token = await registry.token(tenant, "ext:read")
    # Round robin starts with the first runner: the hung one.
    gw = await gateway_factory(
        runner_url=f"{blackhole},{shared_runner.url}", gateway_runner_connect_timeout_ms=300
    )
    t0 = time.monotonic()
    resp = await gw.call("GET", "/api/ext/com.acme.hop/reflect/status", token)
    elapsed = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    # Far above the 300 ms connect timeout, far below the call's own 6 s budget.
    assert elapsed < 4.0, f"the call waited {elapsed:.1f}s on a connect that never completes"
