"""Service-free pieces of the gateway: envelope bytes, header policy, answer mapping, cache races,
and the runner client's HTTP/1.1 handling against a real socket server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import pytest

from api.gateway.cache import TtlCache
from api.gateway.errors import BadGateway, HandlerTimeout, RunnerBusy
from api.gateway.http import HandlerAnswer, forward_headers, handler_answer, map_runner_reply
from api.gateway.runner_client import RunnerClient, RunnerSaturated
from core.crypto import SecretEnvelope
from registry.envelope import CallFields, prepare
from registry.read_gateway import GatewayInstall
from schema.envelope import ExecuteRequest

INSTALL = GatewayInstall(
    install_id="7f7e7d7c-0000-4000-8000-000000000001",
    tenant_id="acme",
    extension="com.acme.app",
    version="1.2.3",
    content_hash="sha256:" + "a" * 64,
    active=True,
    revision=7,
    endpoints=(("GET", "/status"), ("POST", "/items/:id")),
    granted_capabilities=("cap:secrets.get",),
    timeout_ms=1500,
    memory_mb=32,
    egress=("api.example.com",),
    config={"region": "eu", "retries": 3, "flags": {"a": True}},
    config_version=4,
    secrets=SecretEnvelope(
        install_id="7f7e7d7c-0000-4000-8000-000000000001",
        secrets_version=2,
        ciphertext_b64="Y2lwaGVy",
        nonce_b64="bm9uY2U=",
        wrapped_key_b64="a2V5",
        master_key_version=1,
    ),
    secrets_version=2,
    rate_limit_rps=None,
    rate_limit_burst=9,
)


def test_envelope_is_valid_and_carries_install_state() -> None:
    prepared = prepare(INSTALL, default_rps=5.0, default_burst=10)
    assert (prepared.rps, prepared.burst) == (5.0, 9)
    raw = prepared.envelope(
        request_id="req-1",
        method="POST",
        path="/items/1",
        query="a=1&b=%22",
        headers=[("content-type", 'text/plain; q="x"'), ("x-\u00e9", "\u00e9")],
        body_b64=base64.b64encode(b"\x00\xffbody"),
        user={"id": "tok", "name": "n", "kind": "token"},
    )
    env = ExecuteRequest.model_validate_json(raw)
    ctx = env.context
    assert (ctx.install_id, ctx.revision, ctx.config_version, ctx.secrets_version) == (
        INSTALL.install_id,
        7,
        4,
        2,
    )
    assert ctx.request_id == "req-1"
    assert ctx.config == {"region": "eu", "retries": "3", "flags": '{"a":true}'}
    assert base64.b64decode(env.request.body_b64) == b"\x00\xffbody"
    assert env.request.headers[0] == ("content-type", 'text/plain; q="x"')
    assert env.limits.timeout_ms == 1500 and env.limits.memory_mb == 32
    assert env.capabilities.granted == ["cap:secrets.get"]
    assert env.egress == ["api.example.com"]
    assert env.secrets is not None and env.secrets.wrapped_key_b64 == "a2V5"
    assert env.user is not None and env.user.id == "tok"
    assert b"x-ext-revision: 7\r\n" in prepared.runner_headers
    assert b"x-ext-config-version: 4\r\n" in prepared.runner_headers
    assert b"x-ext-secrets-version: 2\r\n" in prepared.runner_headers
    assert prepared.match("HEAD", "/status") == "/status"
    assert prepared.match("POST", "/items/abc") == "/items/:id"
    assert prepared.match("POST", "/items/abc/def") is None
    assert prepared.match("DELETE", "/items/abc") is None


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"user": None, "headers": [], "body_b64": b"", "query": ""},
        {"headers": [(f"x-{i}", "\u00e9" * i) for i in range(200)], "path": "/p" * 1000},
    ],
    ids=["typical", "bare", "large"],
)
def test_the_envelope_model_is_what_the_runner_parses_from_its_bytes(fields: dict[str, object]) -> None:
    """Co-located mode hands the runner `model(call)`; a remote runner parses `encode(call)`: the same
    envelope, field for field."""
    from dataclasses import replace

    fp = "wasmtime-50.0.1-x86_64-linux-0123456789abcdef"
    prepared = prepare(
        replace(INSTALL, artifacts=((fp, "ab" * 32, 4096),)), default_rps=5.0, default_burst=10
    )
    call = CallFields(
        **{  # type: ignore[arg-type]
            "request_id": "req-1",
            "method": "POST",
            "path": "/items/1",
            "query": "a=1&b=%22",
            "headers": [("content-type", 'text/plain; q="x"'), ("x-\u00e9", "\u00e9")],
            "body_b64": base64.b64encode(b"\x00\xffbody"),
            "user": {"id": "tok", "kind": "token"},
            **fields,
        }
    )
    parsed = ExecuteRequest.model_validate_json(prepared.encode(call))
    model = prepared.model(call)
    assert model.model_dump() == parsed.model_dump()
    assert model == parsed


@pytest.mark.parametrize(
    "fields",
    [{"method": ""}, {"path": "/" + "x" * 2048}, {"headers": [("a", "b")] * 257}, {"request_id": ""}],
    ids=["empty-method", "long-path", "too-many-headers", "empty-request-id"],
)
def test_the_envelope_model_refuses_what_the_runner_would_refuse(fields: dict[str, object]) -> None:
    prepared = prepare(INSTALL, default_rps=5.0, default_burst=10)
    base: dict[str, object] = {
        "request_id": "r",
        "method": "GET",
        "path": "/status",
        "query": "",
        "headers": [],
        "body_b64": b"",
        "user": None,
    }
    call = CallFields(**{**base, **fields})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        prepared.model(call)
    with pytest.raises(ValueError):
        ExecuteRequest.model_validate_json(prepared.encode(call))


def test_a_handler_answer_is_mapped_alike_from_json_and_from_an_outcome() -> None:
    headers = [["content-type", "text/plain"], ["set-cookie", "a=1"], ["x-ext-k", "v"]]
    body = json.dumps(
        {
            "status": 201,
            "headers": headers,
            "body_b64": base64.b64encode(b"hi").decode(),
            "metrics": {"fuel_consumed": 9},
        }
    ).encode()
    assert map_runner_reply(200, body) == handler_answer(201, headers, b"hi", 9)
    assert handler_answer(204, [], b"dropped", True) == HandlerAnswer(
        204, [(b"cache-control", b"no-store")], b"", None
    )
    for status in (101, 600, "200"):
        with pytest.raises(BadGateway):
            handler_answer(status, [], b"", 1)


def test_envelope_carries_the_recorded_artifact_digests() -> None:
    from dataclasses import replace

    fp = "wasmtime-50.0.1-x86_64-linux-0123456789abcdef"
    install = replace(INSTALL, artifacts=((fp, "ab" * 32, 4096),))
    raw = prepare(install, default_rps=5.0, default_burst=10).envelope(
        request_id="r", method="GET", path="/status", query="", headers=[], body_b64=b"", user={"id": "u"}
    )
    env = ExecuteRequest.model_validate_json(raw)
    assert {k: (v.sha256, v.size) for k, v in env.artifacts.items()} == {fp: ("ab" * 32, 4096)}


def test_malformed_precompiled_records_are_left_out() -> None:
    from registry.read_gateway import _artifacts

    good = {"key": "artifacts/x/fp.cwasm", "sha256": "cd" * 32, "size": 7}
    records = {
        "wasmtime-ok": good,
        "Bad/Fingerprint": good,
        "wasmtime-short-sha": {**good, "sha256": "cd"},
        "wasmtime-upper-sha": {**good, "sha256": "CD" * 32},
        "wasmtime-no-size": {"sha256": "cd" * 32},
        "wasmtime-bool-size": {**good, "size": True},
        "wasmtime-not-a-record": "x",
    }
    assert _artifacts(records) == (("wasmtime-ok", "cd" * 32, 7),)
    assert _artifacts(None) == () and _artifacts([]) == ()


def test_forwarded_headers_drop_credentials_and_hop_by_hop() -> None:
    raw = [
        (b"authorization", b"Bearer x"),
        (b"cookie", b"a=1"),
        (b"proxy-authorization", b"x"),
        (b"connection", b"upgrade, x-secret-hop"),
        (b"upgrade", b"websocket"),
        (b"x-secret-hop", b"1"),
        (b"te", b"trailers"),
        (b"accept", b"*/*"),
    ]
    assert forward_headers(raw) == [("accept", "*/*")]


def _reply(status: int = 200, headers: list[list[str]] | None = None, body: bytes = b"hi") -> bytes:
    return json.dumps(
        {"status": status, "headers": headers or [], "body_b64": base64.b64encode(body).decode()}
    ).encode()


def test_runner_answers_map_to_tenant_statuses() -> None:
    answer = map_runner_reply(
        200,
        _reply(
            201,
            [
                ["Content-Type", "application/json"],
                ["Cache-Control", "immutable"],
                ["X-Ext-Id", "1"],
                ["x-ext-evil", "a\r\nset-cookie: x=1"],
                ["Set-Cookie", "a=1"],
                ["Transfer-Encoding", "chunked"],
            ],
        ),
    )
    assert answer.status == 201 and answer.body == b"hi"
    assert answer.headers == [
        (b"content-type", b"application/json"),
        (b"x-ext-id", b"1"),
        (b"cache-control", b"no-store"),
    ]
    assert map_runner_reply(200, _reply(204)).body == b""
    with pytest.raises(HandlerTimeout):
        map_runner_reply(504, b'{"error":{"code":"deadline_exceeded","message":"x"}}')
    with pytest.raises(RunnerBusy):
        map_runner_reply(503, b'{"error":{"code":"runner_busy","message":"x"}}')
    for status, body in [
        (500, b'{"error":{"code":"memory_exhausted","message":"x"}}'),
        (503, b'{"error":"internal"}'),
        (401, b'{"error":"unauthenticated"}'),
        (200, b"not json"),
        (200, _reply(99)),
        (200, _reply(700)),
        (200, b'{"status":200,"body_b64":"***"}'),
        (200, b'{"status":200,"headers":[["a"]]}'),
    ]:
        with pytest.raises(BadGateway):
            map_runner_reply(status, body)


async def test_cache_single_flight_and_invalidation_race() -> None:
    cache: TtlCache[str, int] = TtlCache(ttl_s=60, negative_ttl_s=60, max_entries=2)
    gate = asyncio.Event()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return loads

    first = asyncio.create_task(cache.get("k", load))
    second = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    cache.invalidate("k")  # a change lands while the load is in flight
    gate.set()
    assert await first == await second == 1
    assert loads == 1  # one load for both callers
    assert cache.peek("k") is None  # ... and its possibly stale result was not stored
    assert await cache.get("k", load) == 2
    assert await cache.get("k", load) == 2  # now cached
    # bounded: the oldest entry goes
    await cache.get("a", load)
    await cache.get("b", load)
    assert len(cache) == 2 and cache.peek("k") is None


async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


async def test_runner_client_keepalive_chunked_and_failures() -> None:
    connections = 0
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                seen.append(await _read_request(reader))
                n = len(seen)
                if n == 2:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    )
                elif n == 3:
                    writer.close()  # read it, then died without answering: it may have run
                    return
                elif n == 5:
                    writer.write(b"garbage\r\n\r\n")
                elif n == 6:
                    await reader.read()  # never answers; returns when the client gives up and closes
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server, url = await _serve(handler)
    client = RunnerClient(url, auth="s3cret", idle_s=10)
    try:
        assert (await client.execute(b"{}", request_id="r1", timeout_s=2)).body == b"ok"
        assert (await client.execute(b"{}", request_id="r2", timeout_s=2)).body == b"abc"
        assert connections == 1  # kept alive
        assert b"x-runner-auth: s3cret\r\n" in seen[0] and b"x-request-id: r1\r\n" in seen[0]
        with pytest.raises(BadGateway):
            await client.execute(b"{}", request_id="r3", timeout_s=2)
        assert len(seen) == 3  # written once, never sent again
        assert (await client.execute(b"{}", request_id="r4", timeout_s=2)).body == b"ok"
        assert connections == 2  # the dead connection was not reused
        with pytest.raises(BadGateway):
            await client.execute(b"{}", request_id="r5", timeout_s=2)
        with pytest.raises(HandlerTimeout):
            await client.execute(b"{}", request_id="r6", timeout_s=0.2)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    unreachable = RunnerClient(url, auth="x")
    with pytest.raises(BadGateway):
        await unreachable.execute(b"{}", request_id="r", timeout_s=2)


async def test_runner_client_sheds_instead_of_queueing() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await _read_request(reader)
                await release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server, url = await _serve(handler)
    client = RunnerClient(url, auth="x", max_connections=4, tenant_share=0.5)
    try:
        held = [
            asyncio.create_task(client.execute(b"{}", request_id=f"a{i}", timeout_s=10, tenant="a"))
            for i in range(2)
        ]
        await asyncio.sleep(0)
        # Tenant a holds its share (2 of 4): refused at once, not queued; tenant b still gets a slot.
        with pytest.raises(RunnerSaturated) as refused:
            await client.execute(b"{}", request_id="a3", timeout_s=10, tenant="a")
        assert refused.value.code.value == "runner_busy" and refused.value.http_status == 503
        others = [
            asyncio.create_task(client.execute(b"{}", request_id=f"b{i}", timeout_s=10, tenant="b"))
            for i in range(2)
        ]
        await asyncio.sleep(0)
        with pytest.raises(RunnerSaturated):  # all 4 in use
            await client.execute(b"{}", request_id="c", timeout_s=10, tenant="c")
        release.set()
        assert [r.body for r in await asyncio.gather(*held, *others)] == [b"ok"] * 4
        assert (await client.execute(b"{}", request_id="a4", timeout_s=10, tenant="a")).body == b"ok"
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
