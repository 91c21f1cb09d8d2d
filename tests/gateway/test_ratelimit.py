"""The per-(tenant, extension) token bucket: fires, recovers, isolates, and fails closed."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from api.gateway.errors import RateLimiterUnavailable
from api.gateway.ratelimit import RateLimiter
from api.gateway.resp import RespClient, RespError
from tests.gateway.conftest import Gateway, GatewayFactory, Registry, eventually, free_port
from tests.gateway.test_policy import assert_error

pytestmark = pytest.mark.integration


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_install_limit_fires_and_recovers(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", rps=4, burst=2)
    await registry.install(a, "com.acme.other", rps=4, burst=2)
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert [(await gateway.call("GET", url, token)).status_code for _ in range(2)] == [200, 200]
    limited = await gateway.call("GET", url, token)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    # Another extension of the same tenant has its own bucket.
    assert (await gateway.call("GET", "/api/ext/com.acme.other/reflect/status", token)).status_code == 200
    # 4 tokens/s: the bucket refills (how fast is the limiter's unit tests' business, not a wall clock's).

    async def served() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 200

    await eventually(served, deadline_s=30, interval_s=0.05)


async def test_defaults_apply_without_install_limits(
    gateway_factory: GatewayFactory, registry: Registry
) -> None:
    gw: Gateway = await gateway_factory(rate_limit_rps=0.01, rate_limit_burst=3)
    a, b = tenant(), tenant()
    await registry.install(a, "com.acme.app")
    await registry.install(b, "com.acme.app")
    token_a, token_b = await registry.token(a, "ext:read"), await registry.token(b, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert [(await gw.call("GET", url, token_a)).status_code for _ in range(4)] == [200, 200, 200, 429]
    # Tenant B's bucket for the same extension is untouched by A's traffic.
    assert (await gw.call("GET", url, token_b)).status_code == 200


async def test_limiter_unreachable_fails_closed(gateway_factory: GatewayFactory, registry: Registry) -> None:
    gw: Gateway = await gateway_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    started = time.monotonic()
    resp = await gw.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert_error(resp, 503, "rate_limiter_unavailable")
    # Refused within the limiter's Redis timeout rather than hanging (a bound, not a speed claim).
    assert time.monotonic() - started < 5


async def test_bucket_script_directly(redis_url: str) -> None:
    client = RespClient(redis_url, timeout_s=1.0)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        limiter = RateLimiter(client)
        decisions = [await limiter.take("t", "com.acme.x", rps=0.5, burst=3) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
        assert decisions[3].retry_after_s == 2  # 1 token at 0.5/s
        # The bucket lives in this test's db index (the URL's), and expires once a full bucket would
        # have refilled (burst / rps + 1 s).
        ttl = await admin.pttl("extplane:rl:com.acme.x|t")
        assert 0 < ttl <= 7000
    finally:
        await client.aclose()
        await admin.aclose()


async def test_resp_client_recovers_from_flushed_scripts_and_killed_connections(redis_url: str) -> None:
    name = f"test-limiter-{uuid.uuid4().hex[:8]}"
    client = RespClient(redis_url, timeout_s=1.0, client_name=name)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        limiter = RateLimiter(client)
        assert (await limiter.take("t", "com.acme.y", rps=0.001, burst=100)).remaining == 99
        await admin.script_flush()  # NOSCRIPT next: the client loads the script and retries
        assert (await limiter.take("t", "com.acme.y", rps=0.001, burst=100)).remaining == 98
        mine = [c["id"] for c in await admin.client_list() if c.get("name") == name]
        assert len(mine) == 1
        await admin.client_kill_filter(_id=mine[0])  # the pooled connection dies while idle
        assert (await limiter.take("t", "com.acme.y", rps=0.001, burst=100)).remaining == 97
    finally:
        await client.aclose()
        await admin.aclose()


async def test_resp_client_errors_are_limiter_unavailable(redis_url: str) -> None:
    down = RateLimiter(RespClient(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0))
    with pytest.raises(RateLimiterUnavailable):
        await down.take("t", "com.acme.z", rps=1, burst=1)
    bad_auth = RespClient(redis_url.replace("redis://", "redis://nobody:wrong@"), timeout_s=1.0)
    with pytest.raises(RespError):
        await bad_auth.evalsha("return 1", [], [])
    broken = RespClient(redis_url, timeout_s=1.0)
    try:
        with pytest.raises(RespError):
            await broken.evalsha("return redis.call('NOPE')", [], [])
        with pytest.raises(RespError):
            await broken.evalsha("return 'not a list of integers'", [], [])
    finally:
        await broken.aclose()
