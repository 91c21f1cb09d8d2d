"""Unknown bearer tokens cannot buy Postgres queries (issue 11, item 16).

The gateway's own Postgres pool is watched with asyncpg query loggers (every statement its connections
run), so these tests count the real registry reads rather than trusting the authenticator's counters.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid

import asyncpg
import pytest

from api.auth import well_formed
from tests.gateway.conftest import Gateway, GatewayFactory, Registry

pytestmark = pytest.mark.integration

URL = "/api/ext/com.acme.app/reflect/status"


class QueryLog:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: asyncpg.connection.LoggedQuery) -> None:
        self.queries.append(record.query)

    async def token_reads(self) -> int:
        await asyncio.sleep(0)  # asyncpg calls loggers with call_soon
        return sum("api_tokens" in q for q in self.queries)


async def watch(gw: Gateway) -> QueryLog:
    """Attach a query logger to every connection the gateway's pool can hold."""
    assert gw.app.resources is not None
    pool = gw.app.resources.pool
    log = QueryLog()
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    for conn in held:
        conn.add_query_logger(log)
    for conn in held:
        await pool.release(conn)
    return log


def random_token() -> str:
    return "ext_" + secrets.token_urlsafe(32)


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_minted_tokens_are_well_formed() -> None:
    assert well_formed(random_token())
    assert not well_formed("ext_" + secrets.token_urlsafe(32) + "!")
    assert not well_formed("ext_short")
    assert not well_formed("x" * 60)


async def test_malformed_tokens_are_refused_without_a_registry_read(
    gateway: Gateway, registry: Registry
) -> None:
    await registry.install(tenant(), "com.acme.app")
    log = await watch(gateway)
    malformed = [
        "garbage",
        "a" * 500,
        "ext_" + "x" * 20,  # too short
        "ext_" + "y" * 129,  # too long
        "ext_" + "z" * 40 + "%",  # outside the url-safe alphabet
        "EXT_" + secrets.token_urlsafe(32),
        "ext_" + secrets.token_urlsafe(32) + ".sig",
        "ext_" + "\u00e9" * 40,  # sent as latin-1 bytes
    ]
    malformed += [secrets.token_hex(32) for _ in range(40)]  # random hex: what a naive flood sends
    for token in malformed:
        resp = await gateway.client.get(URL, headers={b"authorization": f"Bearer {token}".encode("latin-1")})
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"] == "unauthenticated"
        assert token not in resp.text  # the rejected value is never echoed
    assert await log.token_reads() == 0
    metrics = (await gateway.client.get("/metrics")).text
    assert f'gateway_token_checks_total{{result="malformed"}} {float(len(malformed))}' in metrics


async def test_concurrent_calls_with_one_unknown_token_share_one_read(
    gateway: Gateway, registry: Registry
) -> None:
    await registry.install(tenant(), "com.acme.app")
    log = await watch(gateway)
    token = random_token()
    replies = await asyncio.gather(*(gateway.call("GET", URL, token) for _ in range(50)))
    assert {r.status_code for r in replies} == {401}
    assert await log.token_reads() == 1
    # and the miss is then cached: more calls, still one read
    assert (await gateway.call("GET", URL, token)).status_code == 401
    assert await log.token_reads() == 1


async def test_concurrent_first_calls_of_a_valid_token_share_one_read(
    gateway: Gateway, registry: Registry
) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app", rps=1000, burst=1000)
    token = await registry.token(a, "ext:read")
    log = await watch(gateway)
    replies = await asyncio.gather(*(gateway.call("GET", URL, token) for _ in range(20)))
    assert {r.status_code for r in replies} == {200}
    assert await log.token_reads() == 1


async def test_a_flood_of_unknown_tokens_is_bounded_and_spares_known_ones(
    gateway_factory: GatewayFactory, registry: Registry
) -> None:
    """Well-formed random tokens: reads stop at the lookup budget (503, no query), the miss cache cannot
    evict a token in use, and that token keeps working without another read."""
    gw = await gateway_factory(
        gateway_token_lookups_per_s=0.001,  # no refill within the test: the burst is the whole budget
        gateway_token_lookup_burst=20,
        gateway_token_cache_entries=10,
    )
    a = tenant()
    await registry.install(a, "com.acme.app", rps=10_000, burst=10_000)
    good = await registry.token(a, "ext:read")
    log = await watch(gw)
    assert (await gw.call("GET", URL, good)).status_code == 200
    statuses = [(await gw.call("GET", URL, random_token())).status_code for _ in range(200)]
    assert statuses.count(401) == 19 and statuses.count(503) == 181
    assert await log.token_reads() == 20  # the good token's read + 19 unknown ones
    shed = await gw.call("GET", URL, random_token())
    assert shed.json()["error"] == "registry_unavailable"
    assert (await gw.call("GET", URL, good)).status_code == 200  # still cached: 10 entries, 200 misses
    assert await log.token_reads() == 20
