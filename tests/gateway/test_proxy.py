"""What crosses the gateway: headers in and out, bodies, statuses, and runner failures."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Gateway, GatewayFactory, Registry, RunnerProcess, eventually, free_port
from tests.gateway.test_policy import assert_error

pytestmark = pytest.mark.integration


@pytest.fixture(params=["http", "frame"])
def hop(request: pytest.FixtureRequest) -> str:
    """Every test here runs over both gateway → runner hops: HTTP and the framed one."""
    return str(request.param)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, shared_runner: RunnerProcess, hop: str) -> Gateway:
    return await gateway_factory(runner_url=shared_runner.hop_url(hop))


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def reflected_headers(text: str) -> dict[str, str]:
    head = text.split("\n\n", 1)[0].split("\n")[1:]
    return dict(line.split(": ", 1) for line in head)


async def test_request_headers_are_filtered_and_set(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read", "ext:write")
    resp = await gateway.call(
        "POST",
        "/api/ext/com.acme.app/reflect/items/9?x=1&y=2",
        token,
        headers={
            "cookie": "sid=1",
            "x-request-id": "client-chosen",
            "x-idempotency-key": "idem-123",
            "x-runner-auth": "guess",
            "x-tenant-id": a,
            "connection": "keep-alive, x-private",
            "x-private": "hop",
            "x-custom": "kept",
            "content-type": "application/json",
        },
        content=b'{"a":1}',
    )
    assert resp.status_code == 200, resp.text
    first_line, _, body = resp.text.partition("\n")
    assert first_line == "POST /reflect/items/9?x=1&y=2"
    assert resp.text.endswith('\n\n{"a":1}')
    seen = reflected_headers(resp.text)
    for gone in ("authorization", "cookie", "x-runner-auth", "x-tenant-id", "connection", "x-private"):
        assert gone not in seen, gone
    assert seen["x-custom"] == "kept"
    assert seen["content-type"] == "application/json"
    assert seen["x-request-id"] == resp.headers["x-request-id"] != "client-chosen"
    assert seen["x-idempotency-key"] == "idem-123"

    # Non-GET without a key: the request id stands in. GET: no idempotency key at all.
    put = await gateway.call("PUT", "/api/ext/com.acme.app/reflect/items/9", token)
    assert reflected_headers(put.text)["x-idempotency-key"] == put.headers["x-request-id"]
    get = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert "x-idempotency-key" not in reflected_headers(get.text)


async def test_response_headers_are_filtered(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["etag"] == '"v1"'
    assert resp.headers["x-ext-trace"] == "guest"
    assert resp.headers["cache-control"] == "public, max-age=60"  # never immutable
    assert "set-cookie" not in resp.headers
    assert "x-powered-by" not in resp.headers
    assert resp.headers.get("connection") != "close"
    assert len(resp.headers["x-request-id"]) == 32


async def test_handler_status_passes_through(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/teapot", token)
    assert (resp.status_code, resp.text) == (418, "short and stout")
    assert resp.headers["x-request-id"]


async def test_guest_trap_is_bad_gateway(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/trap", token)
    assert_error(resp, 502, "bad_gateway")
    assert "guest_trap" in resp.json()["message"]


async def test_runner_deadline_is_handler_timeout(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.slow", timeout_ms=200)
    token = await registry.token(a, "ext:read")
    started = time.monotonic()
    resp = await gateway.call("GET", "/api/ext/com.acme.slow/loop", token)
    assert_error(resp, 504, "handler_timeout")
    assert time.monotonic() - started < 5


async def test_fuel_exhaustion_is_bad_gateway(
    gateway_factory: GatewayFactory,
    registry: Registry,
    runner_data_dir: Path,
    database_server_url: str,
    hop: str,
) -> None:
    # A small fuel budget (200 ms x 1000/ms) runs out long before the 200 ms deadline.
    runner = RunnerProcess(runner_data_dir, database_server_url, EXT_FUEL_PER_MS="1000")
    runner.start()
    try:
        gw: Gateway = await gateway_factory(runner_url=runner.hop_url(hop))
        a = tenant()
        await registry.install(a, "com.acme.slow", timeout_ms=200)
        token = await registry.token(a, "ext:read")
        resp = await gw.call("GET", "/api/ext/com.acme.slow/loop", token)
        assert_error(resp, 502, "bad_gateway")
        assert "fuel_exhausted" in resp.json()["message"]
    finally:
        runner.kill()


async def test_gateway_timeout_is_handler_timeout(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess, hop: str
) -> None:
    gw: Gateway = await gateway_factory(runner_url=shared_runner.hop_url(hop), gateway_timeout_ms=300)
    a = tenant()
    await registry.install(a, "com.acme.slow", timeout_ms=10_000)
    token = await registry.token(a, "ext:read")
    started = time.monotonic()
    resp = await gw.call("GET", "/api/ext/com.acme.slow/loop", token)
    assert_error(resp, 504, "handler_timeout")
    # The gateway's 300 ms, not the guest's 10 s deadline, ended the call (a bound, not a speed claim).
    assert time.monotonic() - started < 8


async def test_runner_down_is_fast_bad_gateway_and_recovers(
    gateway_factory: GatewayFactory,
    registry: Registry,
    runner_data_dir: Path,
    database_server_url: str,
    hop: str,
) -> None:
    runner = RunnerProcess(runner_data_dir, database_server_url)
    runner.start()
    try:
        gw: Gateway = await gateway_factory(runner_url=runner.hop_url(hop))
        a = tenant()
        await registry.install(a, "com.acme.app")
        token = await registry.token(a, "ext:read")
        url = "/api/ext/com.acme.app/reflect/status"
        assert (await gw.call("GET", url, token)).status_code == 200  # a pooled keep-alive connection now
        runner.kill()
        for _ in range(3):
            started = time.monotonic()
            resp = await gw.call("GET", url, token)
            assert_error(resp, 502, "bad_gateway")
            # No connect-timeout wait on a dead runner (a bound, not a speed claim).
            assert time.monotonic() - started < 3
        runner.start()
        resp = await eventually(lambda: _ok(gw, url, token), deadline_s=10)
        assert resp.text.startswith("GET /reflect/status?")
    finally:
        runner.kill()


async def _ok(gw: Gateway, url: str, token: str) -> httpx.Response | None:
    resp = await gw.call("GET", url, token)
    return resp if resp.status_code == 200 else None


async def test_unknown_runner_bundle_is_bad_gateway(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    inst = await registry.install(a, "com.acme.app")
    # The install points at a bundle the runner's store does not have.
    missing = "sha256:" + "0" * 64
    async with registry.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                      verified_at)
               VALUES ($1, 1, 'x', 'sig', 'ed25519:test', now())""",
            missing,
        )
        await conn.execute(
            """UPDATE versions SET content_hash = $1
               WHERE id = (SELECT version_id FROM installs WHERE id = $2)""",
            missing,
            inst.install_id,
        )
    token = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert_error(resp, 502, "bad_gateway")


async def test_body_limit(
    gateway_factory: GatewayFactory, registry: Registry, shared_runner: RunnerProcess, hop: str
) -> None:
    gw: Gateway = await gateway_factory(runner_url=shared_runner.hop_url(hop), max_body_bytes=1024)
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:write")
    url = "/api/ext/com.acme.app/reflect/items/1"
    ok = await gw.call("POST", url, token, content=b"x" * 1024)
    assert ok.status_code == 200
    assert ok.text.endswith("\n\n" + "x" * 1024)
    assert_error(await gw.call("POST", url, token, content=b"x" * 1025), 413, "payload_too_large")

    # A streamed (chunked, no Content-Length) body is refused once it passes the cap.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 200

    assert_error(await gw.call("POST", url, token, content=chunks()), 413, "payload_too_large")


async def test_streamed_body_stops_reading_past_the_cap(
    gateway_factory: GatewayFactory, registry: Registry
) -> None:
    """Drive the ASGI app directly: it must stop pulling body chunks once the cap is passed."""
    gw: Gateway = await gateway_factory(max_body_bytes=10_000)
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:write")
    pulled = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"z" * 4096, "more_body": pulled < 1000}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/api/ext/com.acme.app/reflect/items/1",
        "raw_path": b"/api/ext/com.acme.app/reflect/items/1",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    await gw.app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled == 3  # 3 * 4096 > 10_000: nothing read after that


async def test_overlong_path_or_query_is_a_client_error(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:write")
    url = "/api/ext/com.acme.app/reflect/items/"
    assert_error(await gateway.call("POST", url + "x" * 2100, token), 400, "invalid_request")
    assert_error(await gateway.call("POST", url + "1?q=" + "y" * 8200, token), 400, "invalid_request")
    assert (await gateway.call("POST", url + "x" * 2000, token)).status_code == 200


async def test_several_runners_share_calls_and_cover_for_a_dead_one(
    gateway_factory: GatewayFactory,
    registry: Registry,
    shared_runner: RunnerProcess,
    runner_data_dir: Path,
    database_server_url: str,
    hop: str,
) -> None:
    second = RunnerProcess(runner_data_dir, database_server_url, EXT_FUEL_PER_MS="1000000000")
    second.start()
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        gw = await gateway_factory(runner_url=f"{shared_runner.hop_url(hop)},{dead},{second.hop_url(hop)}")
        a = tenant()
        await registry.install(a, "com.acme.app")
        token = await registry.token(a, "ext:read")
        before = await _executions(second.url)
        codes = [
            (await gw.call("GET", "/api/ext/com.acme.app/reflect/status", token)).status_code
            for _ in range(9)
        ]
        assert codes == [200] * 9  # the dead runner's turns went to the next one
        assert await _executions(second.url) - before >= 3  # and the second runner took its share
    finally:
        second.kill()


async def _executions(runner_url: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(runner_url + "/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("extplane_runner_executions_total{") and 'outcome="ok"' in line
    )
