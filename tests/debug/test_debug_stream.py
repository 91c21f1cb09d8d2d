"""The debug stream end to end: guest code in the real runner → Redis streams → the real gateway's SSE
endpoint → a client. Tenant isolation, the scope and capability gates, replay, polling, session
expiry and its audit row, and the operator listing."""

from __future__ import annotations

import base64
import json
import re
import signal
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from temporalio.service import RPCError

from api.operator.app import create_app as create_operator_app
from api.operator.settings import OperatorSettings
from bundles.blobstore import FilesystemBlobStore
from core.codec import data_converter
from core.db import create_pool
from core.settings import ApiSettings
from core.temporal import connect_temporal
from schema.temporal import compile_task_queue_for
from tests.debug.conftest import (
    ADMIN_TOKEN,
    SseEvent,
    SseReader,
    Stack,
    bearer,
    eventually,
    limiter_redis_url,
    start_gateway,
)
from tests.workflows.helpers import fixed_keyring
from workflows.worker import build_workers, running_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

STREAM = "/api/ext-debug/stream"


def names() -> tuple[str, str]:
    return f"t-{uuid.uuid4().hex[:10]}", f"com.debug.x{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def sse(
    base_url: str, token: str, params: dict[str, Any], headers: dict[str, str] | None = None
) -> AsyncIterator[SseReader]:
    """An open SSE session; the first (`session`) event is already read and checked."""
    timeout = httpx.Timeout(10.0, read=30.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", STREAM, params=params, headers=bearer(token, **(headers or {}))) as resp,
    ):
        if resp.status_code != 200:
            await resp.aread()
            raise AssertionError(f"stream refused: {resp.status_code} {resp.text}")
        assert resp.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(resp)
        first = await reader.next()
        assert first.event == "session", first
        yield reader


async def status_of(
    base_url: str, token: str | None, params: dict[str, Any], **headers: str
) -> httpx.Response:
    hdrs = dict(headers)
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        # A refused GET answers JSON at once; an accepted one would stream, so use a short read.
        async with client.stream("GET", STREAM, params=params, headers=hdrs) as resp:
            await resp.aread() if resp.status_code != 200 else None
            return resp


@pytest.fixture
async def operator_api(
    stack: Stack, temporal_address: str, task_queue: str, worker_id_num: int, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The operator API over the stack's registry, with an in-process control worker on this test's
    queue: install changes run through the install entity workflow, as in production. Invalidations go
    to the Redis the stack's gateway listens on."""
    keyring = fixed_keyring(1)
    client = await connect_temporal(temporal_address, data_converter=data_converter(keyring))
    pool = await create_pool(stack.db_url, min_size=1, max_size=4)
    redis = aioredis.Redis.from_url(limiter_redis_url(worker_id_num))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="debug-test-compile")
    workers = build_workers(
        client,
        control_task_queue=task_queue,
        compile_task_queue=compile_task_queue_for(task_queue),
        queues=("control",),
        pool=pool,
        store=FilesystemBlobStore(tmp_path / "blobs"),
        redis=redis,
        keyring=keyring,
        compile_executor=executor,
    )
    settings = OperatorSettings(
        env="test",
        database_url=stack.db_url,
        admin_token=ADMIN_TOKEN,
        temporal_address=temporal_address,
        control_task_queue=task_queue,
        master_keys=",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in keyring.keys.items()),
        wait_seconds=45.0,
    )
    app = create_operator_app(settings)
    try:
        async with (
            running_workers(workers),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://op", timeout=60
            ) as api,
        ):
            yield api
            # The install entity workflows are long-lived: end them with the test.
            async for wf in client.list_workflows(
                f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
            ):
                try:
                    await client.get_workflow_handle(wf.id).terminate("test finished")
                except RPCError:
                    pass
    finally:
        await app.state.resources.aclose()
        executor.shutdown(wait=True)
        await redis.aclose()
        await pool.close()


async def test_events_of_a_call_arrive_with_full_context(stack: Stack) -> None:
    tenant, ext = names()
    install_id = await stack.install(tenant, ext)
    token = await stack.token(tenant, "ext:read", "ext:debug")
    async with sse(stack.gateway.url, token, {"extension": ext, "tail": 0}) as reader:
        resp = await stack.call(token, ext, "/spin?tag=ctx1")
        assert resp.status_code == 504, resp.text  # the guest spins past its 300 ms deadline
        rid = resp.headers["x-request-id"]
        seen: list[SseEvent] = []
        await reader.until(lambda e: e.data.get("stream") == "runner", keep=seen)
        mine = [e.data for e in seen if e.data.get("request_id") == rid]
        by_stream = {e["stream"]: e for e in mine}
        assert set(by_stream) == {"log", "stdout", "stderr", "runner"}, mine
        assert by_stream["log"]["message"] == "log ctx1"
        assert by_stream["stdout"]["message"].strip() == "stdout ctx1"
        assert by_stream["stderr"]["message"].strip() == "stderr ctx1"
        assert by_stream["runner"]["message"].startswith("deadline_exceeded")
        assert by_stream["runner"]["level"] == "error"
        for e in mine:
            assert (e["tenant"], e["extension"], e["install_id"], e["version"]) == (
                tenant,
                ext,
                install_id,
                "1.0.0",
            )
            assert e["content_hash"] == stack.hashes[f"{tenant}/{ext}"]
            assert e["truncated"] is False and e["id"]
        assert all(e.id == e.data["id"] for e in seen)


async def test_another_tenants_events_are_never_delivered(stack: Stack) -> None:
    a, ext = names()
    b = f"t-{uuid.uuid4().hex[:10]}"
    install_a = await stack.install(a, ext)
    await stack.install(b, ext)
    token_a = await stack.token(a, "ext:read", "ext:debug")
    token_b = await stack.token(b, "ext:read", "ext:debug")
    url = stack.gateway.url

    # Naming tenant A in a parameter or header with B's token is refused, never honoured.
    for params, headers in (
        ({"extension": ext, "tenant": a}, {}),
        ({"extension": ext, "tenantId": a}, {}),
        ({"extension": ext}, {"x-tenant-id": a}),
        ({"extension": ext}, {"x-extplane-tenant": a}),
    ):
        resp = await status_of(url, token_b, params, **headers)
        assert resp.status_code == 403 and resp.json()["error"] == "tenant_mismatch", (params, headers)

    # A's events exist (A sees them) ...
    assert (await stack.call(token_a, ext, "/chatty?tag=secret-of-a")).status_code == 200
    async with sse(url, token_a, {"extension": ext, "tail": 50}) as reader:
        await reader.until(lambda e: e.data.get("message") == "log secret-of-a")

    # ... but B, repeating its own tenant, gets only B's, even while A is active.
    async with sse(url, token_b, {"extension": ext, "tail": 2000, "tenant": b}) as reader:
        assert (await stack.call(token_a, ext, "/chatty?tag=live-of-a")).status_code == 200
        assert (await stack.call(token_b, ext, "/chatty?tag=sentinel-of-b")).status_code == 200
        seen: list[SseEvent] = []
        await reader.until(lambda e: e.data.get("message") == "log sentinel-of-b", keep=seen)
        assert seen and all(e.data["tenant"] == b for e in seen), seen
        assert not any("-of-a" in e.data.get("message", "") for e in seen)

    # Filtering on A's install id selects nothing of A's either: A's live events do not match B's key.
    async with sse(url, token_b, {"extension": ext, "tail": 2000, "install": install_a}) as reader:
        assert (await stack.call(token_a, ext, "/chatty?tag=live2-of-a")).status_code == 200
        with pytest.raises(TimeoutError):
            await reader.next(timeout_s=2.0)
        assert reader.comments >= 1  # heartbeats: the stream was alive all along

    # The polling fallback draws the same line.
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        resp = await client.post(
            STREAM, params={"extension": ext, "tail": 2000}, headers=bearer(token_b), json={}
        )
        assert resp.status_code == 200
        events = resp.json()["events"]
        assert events and all(e["tenant"] == b for e in events)
        resp = await client.post(
            STREAM, params={"extension": ext, "tenant": a}, headers=bearer(token_b), json={}
        )
        assert resp.status_code == 403 and resp.json()["error"] == "tenant_mismatch"

    # An operator (global admin token) acts for exactly the tenant it names, and sees only that one.
    async with sse(url, ADMIN_TOKEN, {"extension": ext, "tail": 2000}, {"x-extplane-tenant": b}) as reader:
        await stack.call(token_b, ext, "/chatty?tag=operator-view")
        seen = []
        await reader.until(lambda e: e.data.get("message") == "log operator-view", keep=seen)
        assert all(e.data["tenant"] == b for e in seen)


@pytest.mark.temporal
async def test_scope_and_capability_gates(stack: Stack, operator_api: httpx.AsyncClient) -> None:
    tenant, ext = names()
    plain = f"com.debug.plain{uuid.uuid4().hex[:6]}"
    await stack.install(tenant, ext)
    await stack.install(tenant, plain, capabilities=())
    url = stack.gateway.url
    no_debug = await stack.token(tenant, "ext:read", "ext:write")
    debug = await stack.token(tenant, "ext:debug")

    resp = await status_of(url, None, {"extension": ext})
    assert resp.status_code == 401
    resp = await status_of(url, no_debug, {"extension": ext})
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden")
    resp = await status_of(url, debug, {"extension": plain})
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden")
    assert "cap:debug.logs" in resp.json()["message"]
    resp = await status_of(url, debug, {"extension": "com.debug.notinstalled"})
    assert (resp.status_code, resp.json()["error"]) == (404, "extension_not_available")
    resp = await status_of(url, debug, {})
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    resp = await status_of(url, debug, {"extension": ext, "tail": "many"})
    assert resp.status_code == 400
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        resp = await client.post(STREAM, params={"extension": plain}, headers=bearer(debug), json={})
        assert resp.status_code == 403

    # The operator flag installs.debug_enabled opens an install whose manifest did not ask. It is set as
    # an operator sets it (`extctl debug enable`): operator API → install workflow → registry.
    flag = f"/v1/tenants/{tenant}/installs/{plain}/debug"
    resp = await operator_api.put(flag, json={"enabled": True}, headers=bearer(ADMIN_TOKEN))
    assert resp.status_code == 200 and resp.json()["changed"] is True, resp.text
    async with sse(url, debug, {"extension": plain, "tail": 0}):
        pass
    # The gate reads the registry at every session start, so clearing the flag closes it at once.
    resp = await operator_api.put(flag, json={"enabled": False}, headers=bearer(ADMIN_TOKEN))
    assert resp.status_code == 200 and resp.json()["changed"] is True, resp.text
    resp = await status_of(url, debug, {"extension": plain})
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden")


async def test_tail_replay_count_and_request_filter(stack: Stack) -> None:
    tenant, ext = names()
    await stack.install(tenant, ext)
    token = await stack.token(tenant, "ext:read", "ext:debug")
    rids = []
    for i in range(4):
        resp = await stack.call(token, ext, f"/chatty?tag=t{i}")
        assert resp.status_code == 200
        rids.append(resp.headers["x-request-id"])

    async def stored() -> bool:
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:
            resp = await client.post(
                STREAM, params={"extension": ext, "tail": 2000}, headers=bearer(token), json={}
            )
            return len(resp.json()["events"]) == 12  # log + stdout + stderr per call

    await eventually(stored)

    async with sse(stack.gateway.url, token, {"extension": ext, "tail": 5}) as reader:
        replay = [await reader.next() for _ in range(5)]
        # The last five of 12 events, oldest first: call 2's stdout and stderr, then call 3's three.
        assert [e.data["request_id"] for e in replay][-3:] == [rids[3]] * 3
        assert replay[0].data["request_id"] == rids[2]
        ids = [e.id for e in replay]
        assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in str(i).split("-")))
        # Nothing older follows: the next event is live.
        assert (await stack.call(token, ext, "/chatty?tag=live")).status_code == 200
        nxt = await reader.next()
        assert nxt.data["message"] in ("log live", "stdout live\n", "stderr live\n"), nxt

    async with sse(stack.gateway.url, token, {"extension": ext, "tail": 100, "request": rids[1]}) as reader:
        replay = [await reader.next() for _ in range(3)]
        assert {e.data["request_id"] for e in replay} == {rids[1]}
        assert sorted(e.data["stream"] for e in replay) == ["log", "stderr", "stdout"]
        with pytest.raises(TimeoutError):
            await reader.next(timeout_s=1.5)  # only heartbeats: the other calls are filtered out

    # tail above the maximum is clamped, not refused.
    async with sse(stack.gateway.url, token, {"extension": ext, "tail": 999999}) as reader:
        first = await reader.next()
        assert first.data["request_id"] == rids[0]


async def test_polling_fallback(stack: Stack) -> None:
    tenant, ext = names()
    await stack.install(tenant, ext)
    token = await stack.token(tenant, "ext:read", "ext:debug")
    assert (await stack.call(token, ext, "/chatty?tag=p0")).status_code == 200
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as client:

        async def poll(body: dict[str, Any]) -> dict[str, Any]:
            resp = await client.post(STREAM, params={"extension": ext}, headers=bearer(token), json=body)
            assert resp.status_code == 200, resp.text
            doc: dict[str, Any] = resp.json()
            return doc

        async def first_three() -> dict[str, Any] | None:
            doc = await poll({})
            return doc if len(doc["events"]) == 3 else None

        doc = await eventually(first_three)
        assert {e["message"].strip() for e in doc["events"]} == {"log p0", "stdout p0", "stderr p0"}
        last_id, session = doc["lastId"], doc["session"]
        assert last_id == doc["events"][-1]["id"]

        doc = await poll({"lastId": last_id, "session": session})
        assert doc["events"] == [] and doc["lastId"] == last_id

        assert (await stack.call(token, ext, "/chatty?tag=p1")).status_code == 200

        async def next_three() -> dict[str, Any] | None:
            doc = await poll({"lastId": last_id, "session": session})
            return doc if len(doc["events"]) == 3 else None

        doc = await eventually(next_three)
        assert {e["message"].strip() for e in doc["events"]} == {"log p1", "stdout p1", "stderr p1"}
        assert doc["session"] == session

        resp = await client.post(
            STREAM, params={"extension": ext}, headers=bearer(token), json={"lastId": "x"}
        )
        assert resp.status_code == 400
        resp = await client.post(STREAM, params={"extension": ext}, headers=bearer(token), content=b"{nope")
        assert resp.status_code == 400

    conn = await asyncpg.connect(stack.db_url)
    try:
        row = await conn.fetchrow(
            "SELECT transport, events_sent, end_reason FROM debug_sessions WHERE id = $1", uuid.UUID(session)
        )
    finally:
        await conn.close()
    assert row is not None
    # Every poll of the session added to one row: 3 + 0 + 3 (+ the empty polls while waiting).
    assert (row["transport"], row["end_reason"], row["events_sent"]) == ("poll", "poll", 6)
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = (await client.get(f"{stack.gateway.url}/metrics")).text
    polls = re.search(
        r'^gateway_debug_sessions_total\{reason="poll",transport="poll"\} ([0-9.]+)$', metrics, re.M
    )
    assert (
        polls is not None and float(polls.group(1)) >= 3
    )  # this test's polls (others may share the gateway)


async def test_session_expiry_audit_and_operator_listing(stack: Stack, tmp_path: Any) -> None:
    gateway = start_gateway(
        tmp_path,
        db_url=stack.db_url,
        redis_url=stack.redis.url(1),
        debug_redis_url=stack.redis.url(),
        runner_url=stack.runner.url,
        debug_max_session_seconds="3",
    )
    try:
        tenant, ext = names()
        await stack.install(tenant, ext)
        token = await stack.token(tenant, "ext:read", "ext:debug")
        async with sse(gateway.url, token, {"extension": ext, "tail": 0}) as reader:
            assert (await stack.call(token, ext, "/chatty?tag=exp")).status_code == 200
            seen: list[SseEvent] = []
            end = await reader.until(lambda e: e.event == "session_expired", timeout_s=20, keep=seen)
            assert end.data["code"] == "session_expired"
            delivered = [e for e in seen if e.event == "message"]
            assert len(delivered) == 3
            with pytest.raises(EOFError):
                await reader.next(timeout_s=10)

        # A second session that the client closes itself.
        async with sse(gateway.url, token, {"extension": ext, "tail": 2, "request": "nope"}):
            pass
        conn = await asyncpg.connect(stack.db_url)
        try:

            async def rows() -> list[asyncpg.Record] | None:
                found = await conn.fetch(
                    """SELECT * FROM debug_sessions WHERE tenant_id = $1 AND transport = 'sse'
                       ORDER BY started_at""",
                    tenant,
                )
                return found if len(found) == 2 and all(r["ended_at"] for r in found) else None

            expired, closed = await eventually(rows)
            async with httpx.AsyncClient(timeout=10) as client:
                metrics = (await client.get(f"{gateway.url}/metrics")).text
            # The gateway's own view of its debug sessions, for dashboards: none open, two ended, 3 events.
            assert "gateway_debug_sessions_active 0.0" in metrics
            assert 'gateway_debug_sessions_total{reason="session_expired",transport="sse"} 1.0' in metrics
            assert 'gateway_debug_sessions_total{reason="client_closed",transport="sse"} 1.0' in metrics
            assert 'gateway_debug_events_sent_total{transport="sse"} 3.0' in metrics

            # A gateway shutting down ends its open streams itself (uvicorn would wait for them).
            async with sse(gateway.url, token, {"extension": ext, "tail": 0}) as reader:
                gateway.proc.terminate()
                bye = await reader.until(lambda e: e.event == "session_end")
                assert bye.data == {"code": "server_shutdown"}
            assert gateway.proc.wait(15) in (0, -signal.SIGTERM)  # promptly (uvicorn re-raises it)
            last = await conn.fetchrow(
                "SELECT end_reason FROM debug_sessions WHERE tenant_id = $1 ORDER BY started_at DESC LIMIT 1",
                tenant,
            )
            assert last is not None and last["end_reason"] == "server_shutdown"
        finally:
            await conn.close()
    finally:
        gateway.stop()
    assert (expired["end_reason"], expired["events_sent"], expired["extension_name"]) == (
        "session_expired",
        3,
        ext,
    )
    assert expired["principal"].startswith("token:") and expired["token_id"] is not None
    assert (closed["end_reason"], closed["events_sent"]) == ("client_closed", 0)
    assert json.loads(closed["filters"]) == {"tail": 2, "request": "nope"}

    # The operator API lists them; a tenant token sees only its own tenant.
    operator = create_operator_app(
        ApiSettings(env="test", database_url=stack.db_url, admin_token=ADMIN_TOKEN)
    )
    other = await stack.token(f"t-{uuid.uuid4().hex[:10]}", "installs:manage")
    mine = await stack.token(tenant, "installs:manage")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=operator), base_url="http://op") as client:
        try:
            resp = await client.get(
                "/v1/debug-sessions", params={"tenant": tenant}, headers=bearer(ADMIN_TOKEN)
            )
            assert resp.status_code == 200, resp.text
            listed = resp.json()
            assert [s["end_reason"] for s in listed] == [
                "server_shutdown",
                "client_closed",
                "session_expired",
            ]
            assert listed[2]["events_sent"] == 3 and listed[2]["extension"] == ext
            resp = await client.get(
                "/v1/debug-sessions", params={"extension": ext}, headers=bearer(ADMIN_TOKEN)
            )
            assert {s["id"] for s in resp.json()} == {s["id"] for s in listed}
            resp = await client.get("/v1/debug-sessions", params={"tenant": tenant}, headers=bearer(other))
            assert (resp.status_code, resp.json()["error"]) == (403, "tenant_mismatch")
            resp = await client.get("/v1/debug-sessions", headers=bearer(mine))
            assert {s["tenant_id"] for s in resp.json()} == {tenant}
            resp = await client.get("/v1/debug-sessions", headers=bearer(token))
            assert resp.status_code == 403
        finally:
            await operator.state.resources.aclose()
