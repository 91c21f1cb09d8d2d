"""The framed gateway → runner hop (schema.runner_frames) against the real runner process.

tests/gateway/test_proxy.py runs every behaviour of the hop over both transports; here is what only
the framed one has: the challenge handshake, its refusal, the frame size bound, and the watch of the
connection that abandons a call whose gateway left.
"""

from __future__ import annotations

import asyncio
import re
import struct
import uuid

import httpx
import pytest

from core.settings import ApiSettings
from schema.runner_frames import (
    ANSWER_HEAD,
    HELLO_OK,
    HELLO_REFUSED,
    MAGIC,
    NONCE_BYTES,
    handshake_mac,
)
from tests.gateway.conftest import RUNNER_AUTH, GatewayFactory, Registry, RunnerProcess, eventually
from tests.gateway.test_policy import assert_error

pytestmark = pytest.mark.integration


async def _open(runner: RunnerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", runner.frame_port)
    challenge = await reader.readexactly(len(MAGIC) + NONCE_BYTES)
    assert challenge.startswith(MAGIC)
    return reader, writer, challenge[len(MAGIC) :]


async def test_a_wrong_secret_is_refused_at_the_handshake(shared_runner: RunnerProcess) -> None:
    reader, writer, nonce = await _open(shared_runner)
    writer.write(handshake_mac(b"not-the-runner-secret", nonce))
    assert await reader.readexactly(1) == HELLO_REFUSED
    assert await reader.read(1) == b""  # and the runner closed the connection
    writer.close()


async def test_a_replayed_handshake_is_refused(shared_runner: RunnerProcess) -> None:
    """The answer to one connection's challenge is worthless on the next: each nonce is fresh."""
    reader, writer, nonce = await _open(shared_runner)
    recorded = handshake_mac(RUNNER_AUTH.encode(), nonce)
    writer.write(recorded)
    assert await reader.readexactly(1) == HELLO_OK
    writer.close()
    reader, writer, other = await _open(shared_runner)
    assert other != nonce
    writer.write(recorded)
    assert await reader.readexactly(1) == HELLO_REFUSED
    writer.close()


async def test_an_oversized_frame_is_refused_with_invalid_request(shared_runner: RunnerProcess) -> None:
    reader, writer, nonce = await _open(shared_runner)
    writer.write(handshake_mac(RUNNER_AUTH.encode(), nonce))
    assert await reader.readexactly(1) == HELLO_OK
    writer.write(struct.pack(">I", 2**31))  # far above the runner's envelope bound; no body follows
    status, length = ANSWER_HEAD.unpack(await reader.readexactly(ANSWER_HEAD.size))
    body = await reader.readexactly(length)
    assert status == 400
    assert b'"invalid_request"' in body
    assert await reader.read(1) == b""  # the stream position is lost: the runner closes
    writer.close()


async def test_a_gateway_with_the_wrong_secret_gets_a_clear_bad_gateway(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(tenant, "com.acme.app")
    token = await registry.token(tenant, "ext:read")
    gw = await gateway_factory(
        runner_url=shared_runner.frame_url, runner_auth="some-other-runner-auth-0123456789"
    )
    resp = await gw.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert_error(resp, 502, "bad_gateway")
    assert "credentials" in resp.json()["message"]
    assert "some-other" not in resp.text


async def _abandoned_running(runner: RunnerProcess) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(runner.url + "/metrics")).text
    found = re.search(r'^extplane_runner_abandoned_total\{stage="running"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_call_whose_gateway_left_is_abandoned(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess
) -> None:
    """The gateway gives up after 300 ms and closes the framed connection; the runner sees the EOF
    and ends the spinning guest at its next deadline check instead of running out its 10 s."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(tenant, "com.acme.slow", timeout_ms=10_000)
    token = await registry.token(tenant, "ext:read")
    gw = await gateway_factory(runner_url=shared_runner.frame_url, gateway_timeout_ms=300)
    before = await _abandoned_running(shared_runner)
    resp = await gw.call("GET", "/api/ext/com.acme.slow/loop", token)
    assert_error(resp, 504, "handler_timeout")

    async def counted() -> bool:
        return await _abandoned_running(shared_runner) > before

    assert await eventually(counted, deadline_s=8)


def test_frame_urls_need_a_port_and_a_ui_url() -> None:
    from api.gateway.runner_client import RunnerClient

    with pytest.raises(ValueError, match="EXT_FRAME_PORT"):
        RunnerClient("frame://127.0.0.1", auth=RUNNER_AUTH)
    with pytest.raises(ValueError, match="EXT_RUNNER_UI_URL"):
        ApiSettings(env="test", runner_url="frame://127.0.0.1:9001", runner_auth=RUNNER_AUTH)
    mixed = ApiSettings(
        env="test", runner_url="frame://127.0.0.1:9001,http://127.0.0.1:9000", runner_auth=RUNNER_AUTH
    )
    assert mixed.runner_http_url == "http://127.0.0.1:9000"
