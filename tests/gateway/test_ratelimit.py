"""The per-(tenant, extension) token bucket: fires, recovers, isolates, and fails closed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from api.gateway.errors import RateLimiterUnavailable
from api.gateway.ratelimit import LEASE_WINDOW_S, RateLimiter, bucket_key, lease_size
from api.gateway.resp import RespClient, RespError
from tests.gateway.conftest import Gateway, GatewayFactory, Registry, eventually, free_port
from tests.gateway.test_policy import assert_error

pytestmark = pytest.mark.integration


@pytest.fixture
async def resp_client(redis_url: str) -> AsyncIterator[RespClient]:
    client = RespClient(redis_url, timeout_s=1.0)
    yield client
    await client.aclose()


def fresh_extension() -> str:
    return f"com.acme.lease{uuid.uuid4().hex[:6]}"


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


def test_lease_size_keeps_low_rates_at_one_round_trip_per_call() -> None:
    assert lease_size(0.5, 3) == 1
    assert lease_size(4, 2) == 1
    assert lease_size(0.001, 100) == 1
    assert lease_size(50, 100) == 5  # the defaults: 50 rps over a 100 ms window
    assert lease_size(10_000, 16) == 2  # never more than an eighth of the burst
    assert lease_size(1e9, 1_000_000_000) == 16  # nor more than MAX_LEASE


async def test_a_lease_spends_shared_tokens_in_process(redis_url: str, resp_client: RespClient) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    extension = fresh_extension()
    try:
        limiter = RateLimiter(resp_client)
        decisions = [await limiter.take("t", extension, rps=50, burst=100) for _ in range(20)]
        assert all(d.allowed for d in decisions)
        # Before leases every call was one EVALSHA; with leases of 5, 20 calls are 4 round trips.
        assert limiter.round_trips == 4
        # ...and the 20 tokens were taken from the shared bucket, not from thin air (refill at 50/s
        # can only have added back what the elapsed time allows).
        shared = float(await admin.hget(bucket_key("t", extension), "t") or 0)
        assert shared < 81
        assert [d.remaining for d in decisions[:5]] == [99, 98, 97, 96, 95]
    finally:
        await admin.aclose()


async def test_an_expired_or_outdated_lease_is_not_spent(resp_client: RespClient) -> None:
    extension = fresh_extension()
    limiter = RateLimiter(resp_client)
    await limiter.take("t", extension, rps=50, burst=100)
    assert limiter.round_trips == 1
    await asyncio.sleep(LEASE_WINDOW_S * 1.5)
    await limiter.take("t", extension, rps=50, burst=100)
    assert limiter.round_trips == 2  # the lease's 4 tokens expired with its window
    # The install's limits changed (an operator set_limits): the lease taken under the old ones is
    # dropped, and the new bucket parameters decide at once (burst 1: one more call).
    after = [await limiter.take("t", extension, rps=0.001, burst=1) for _ in range(2)]
    assert limiter.round_trips == 4
    assert [d.allowed for d in after] == [True, False]


async def test_two_gateways_never_spend_more_than_the_shared_bucket(redis_url: str) -> None:
    clients = [RespClient(redis_url, timeout_s=1.0) for _ in range(2)]
    extension = fresh_extension()
    rps, burst = 80.0, 400
    try:
        limiters = [RateLimiter(c) for c in clients]
        started = time.monotonic()
        allowed = 0
        for i in range(1200):
            allowed += (await limiters[i % 2].take("t", extension, rps=rps, burst=burst)).allowed
        elapsed = time.monotonic() - started
        # The global bound: the burst plus what the rate refilled while the calls ran (plus the
        # one token a partial refill can round up to). Both gateways did lease (8 tokens each).
        assert allowed <= burst + rps * elapsed + 1
        assert allowed >= burst // 2
        assert all(lim.round_trips < 1200 / 2 for lim in limiters)
    finally:
        for c in clients:
            await c.aclose()


async def test_concurrent_misses_share_one_lease(resp_client: RespClient) -> None:
    limiter = RateLimiter(resp_client)
    extension = fresh_extension()
    # 32 calls in one loop tick, leases of 16: two round trips, not 32 leases drained at once.
    decisions = await asyncio.gather(
        *(limiter.take("t", extension, rps=1e9, burst=1_000_000_000) for _ in range(32))
    )
    assert all(d.allowed for d in decisions)
    assert limiter.round_trips == 2
