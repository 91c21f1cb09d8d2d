"""Install and token resolution come from in-process caches; Redis pub/sub invalidation drops them."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from tests.gateway.conftest import (
    HOSTILE,
    Gateway,
    GatewayFactory,
    Registry,
    eventually,
    publish_invalidation,
)
from tests.gateway.test_policy import assert_error

pytestmark = pytest.mark.integration


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_disabled_install_is_gone_after_one_invalidation(
    gateway: Gateway, registry: Registry, redis_url: str
) -> None:
    await gateway.listening()
    a = tenant()
    inst = await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert (await gateway.call("GET", url, token)).status_code == 200
    await registry.set_status(inst, "disabled")
    # Cached: the gateway does not ask Postgres per call, so it has not seen the change yet.
    assert (await gateway.call("GET", url, token)).status_code == 200
    assert await publish_invalidation(redis_url, inst) >= 1

    async def gone() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 404

    await eventually(gone, deadline_s=30)
    assert_error(await gateway.call("GET", url, token), 404, "extension_not_available")

    await registry.set_status(inst, "active")
    await publish_invalidation(redis_url, inst)

    async def back() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 200

    await eventually(back, deadline_s=30)


async def test_older_revision_does_not_drop_newer_state(
    gateway: Gateway, registry: Registry, redis_url: str
) -> None:
    await gateway.listening()
    a = tenant()
    inst = await registry.install(a, "com.acme.app")
    await registry.set_status(inst, "active")  # revision 2, cached next
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert (await gateway.call("GET", url, token)).status_code == 200
    await registry.set_status(inst, "disabled")  # revision 3, not yet announced
    assert gateway.app.resources is not None
    resolver = gateway.app.resources.installs
    before = resolver.stale_messages
    late = type(inst)(inst.install_id, inst.tenant_id, inst.extension, revision=1)
    await publish_invalidation(redis_url, late)

    async def delivered() -> bool:
        return resolver.stale_messages > before

    await eventually(delivered)
    assert (await gateway.call("GET", url, token)).status_code == 200  # revision 2 kept over revision 1
    await publish_invalidation(redis_url, inst)  # revision 3

    async def gone() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 404

    await eventually(gone, deadline_s=30)


async def test_steady_state_needs_no_postgres(gateway: Gateway, registry: Registry) -> None:
    # Subscribing resets the cache (messages sent before it are lost), so warm it only afterwards.
    await gateway.listening()
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert (await gateway.call("GET", url, token)).status_code == 200
    res = gateway.app.resources
    assert res is not None
    misses = res.installs.cache.misses
    # Take Postgres away from the gateway entirely: cached calls (token and install) keep flowing.
    await res.pool.close()
    for _ in range(20):
        assert (await gateway.call("GET", url, token)).status_code == 200
    assert res.installs.cache.misses == misses


async def test_cache_misses_without_postgres_say_the_registry_is_unavailable(
    gateway: Gateway, registry: Registry
) -> None:
    await gateway.listening()
    a = tenant()
    await registry.install(a, "com.acme.app")
    await registry.install(a, "com.acme.other")
    token = await registry.token(a, "ext:read")
    fresh_token = await registry.token(a, "ext:read")
    assert (await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)).status_code == 200
    res = gateway.app.resources
    assert res is not None
    await res.pool.close()
    # An install never resolved, and a token never seen: both need Postgres, which is gone.
    resp = await gateway.call("GET", "/api/ext/com.acme.other/reflect/status", token)
    assert_error(resp, 503, "registry_unavailable")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", fresh_token)
    assert_error(resp, 503, "registry_unavailable")
    assert "Pool" not in resp.text and "asyncpg" not in resp.text.lower()
    # What was cached keeps serving.
    assert (await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)).status_code == 200


async def test_unknown_names_are_cached_negatively_until_installed(
    gateway_factory: GatewayFactory, registry: Registry, redis_url: str
) -> None:
    # A negative entry that outlives the wait below: only the invalidation can make the name appear.
    gateway = await gateway_factory(gateway_install_negative_ttl_s=600)
    await gateway.listening()
    a = tenant()
    token = await registry.token(a, "ext:read")
    res = gateway.app.resources
    assert res is not None
    url = "/api/ext/com.acme.later/reflect/status"
    assert_error(await gateway.call("GET", url, token), 404, "extension_not_available")
    misses = res.installs.cache.misses
    for _ in range(10):
        assert (await gateway.call("GET", url, token)).status_code == 404
    assert res.installs.cache.misses == misses  # no query per guess
    inst = await registry.install(a, "com.acme.later")
    await publish_invalidation(redis_url, inst)

    async def available() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 200

    await eventually(available, deadline_s=30)


async def test_resubscribing_drops_the_cache(gateway: Gateway, registry: Registry, redis_url: str) -> None:
    """Messages published while the subscription was down are lost, so a reconnect forgets everything."""
    await gateway.listening()
    a = tenant()
    inst = await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.app/reflect/status"
    assert (await gateway.call("GET", url, token)).status_code == 200
    await registry.set_status(inst, "disabled")  # change without an invalidation message
    res = gateway.app.resources
    assert res is not None
    admin = aioredis.Redis.from_url(redis_url)
    try:
        clients = await admin.client_list()
        mine = [c["id"] for c in clients if c.get("name") == res.listener.client_name]
        assert len(mine) == 1
        for cid in mine:
            await admin.client_kill_filter(_id=cid)
    finally:
        await admin.aclose()

    async def gone() -> bool:
        return (await gateway.call("GET", url, token)).status_code == 404

    await eventually(gone, deadline_s=30)


async def test_sealed_secrets_and_their_rotation_reach_the_guest(
    gateway: Gateway, registry: Registry, redis_url: str
) -> None:
    """The install's secret envelope travels sealed to the runner, which opens it for the guest; a
    rotation (new secrets_version + invalidation) is served from the next call on."""
    await gateway.listening()
    a = tenant()
    inst = await registry.install(a, "com.acme.vault", wasm=HOSTILE, endpoints=[("GET", "/secret")])
    await registry.set_secrets(inst, {"token": "first-value"})
    token = await registry.token(a, "ext:read")
    url = "/api/ext/com.acme.vault/secret"
    resp = await gateway.call("GET", url, token)
    assert (resp.status_code, resp.text) == (200, "first-value")
    await registry.set_secrets(inst, {"token": "second-value"})
    await publish_invalidation(redis_url, inst)

    async def rotated() -> bool:
        return (await gateway.call("GET", url, token)).text == "second-value"

    await eventually(rotated, deadline_s=30)
