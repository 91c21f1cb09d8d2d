"""Install resolution: (tenant, extension) → PreparedInstall, cached in-process, invalidated over Redis.

Steady state: no Postgres query per call. A miss runs one query (registry.read_gateway) and caches the
result — negative results too, so name guessing does not reach Postgres on every request. The install
workflows publish `{tenant_id, extension, install_id, revision}` on `extplane:invalidate` after each
change; the listener drops the entry unless it already holds a newer revision. The TTL is a backstop
for a lost message. Whenever the subscription (re)connects the whole cache is dropped, because
messages published while it was down are gone. The same subscription carries other channels
(`extra`, e.g. token revocations) to their own handlers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

import asyncpg
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.asyncio.client import PubSub

from api.gateway.cache import TtlCache
from api.gateway.errors import BadGateway
from registry.envelope import PreparedInstall, prepare
from registry.read_gateway import gateway_install
from schema.payloads.notify import INVALIDATE_CHANNEL

log = structlog.get_logger(__name__)


class InstallResolver:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        default_rps: float,
        default_burst: int,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int,
    ) -> None:
        self._pool = pool
        self._default_rps = default_rps
        self._default_burst = default_burst
        self.cache: TtlCache[tuple[str, str], PreparedInstall] = TtlCache(
            ttl_s=ttl_s, negative_ttl_s=negative_ttl_s, max_entries=max_entries
        )
        self.stale_messages = 0  # invalidations older than what we hold (ignored)

    async def resolve(self, tenant_id: str, extension: str) -> PreparedInstall | None:
        """The install of `extension` in `tenant_id`, active or not; None when not installed."""

        async def load() -> PreparedInstall | None:
            found = await gateway_install(self._pool, tenant_id, extension)
            if found is None:
                return None
            try:
                return prepare(found, default_rps=self._default_rps, default_burst=self._default_burst)
            except ValidationError as exc:
                # Registry data the envelope schema refuses (a publish-time check missed it): fail the
                # call as an upstream problem rather than send the runner something it rejects.
                log.error("install_unservable", install_id=found.install_id, error=str(exc)[:500])
                raise BadGateway("the install's registry record cannot be executed") from exc

        return await self.cache.get((tenant_id, extension), load)

    def on_message(self, raw: bytes | str) -> None:
        try:
            msg = json.loads(raw)
            key = (str(msg["tenant_id"]), str(msg["extension"]))
            revision = int(msg.get("revision", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("invalidation_malformed", message=str(raw)[:200])
            return
        held = self.cache.peek(key)
        if held is not None and held.revision > revision:
            self.stale_messages += 1  # an older, late message: we already hold newer state
            return
        self.cache.invalidate(key)


class InvalidationListener:
    """Subscribes to the invalidation channel for the app's lifetime, reconnecting with backoff."""

    def __init__(
        self,
        url: str,
        on_message: Callable[[bytes | str], None],
        on_reset: Callable[[], None],
        *,
        client_name: str = "extplane-gateway",
        extra: Mapping[str, Callable[[bytes | str], None]] | None = None,
    ):
        self._url = url
        self.client_name = client_name
        self._on_message = on_message
        self._handlers: dict[str, Callable[[bytes | str], None]] = {INVALIDATE_CHANNEL: on_message}
        self._handlers.update(extra or {})
        self._on_reset = on_reset
        self.connected = asyncio.Event()
        self.received = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-invalidation-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            # No socket timeout: a subscription is idle most of the time. Keepalive + health checks
            # notice a dead peer.
            client = aioredis.Redis.from_url(
                self._url,
                socket_connect_timeout=2.0,
                socket_keepalive=True,
                health_check_interval=10,
                client_name=self.client_name,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self._on_reset()
                self.connected.set()
                backoff = 0.05
                log.info("invalidation_subscribed", channel=INVALIDATE_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        self.received += 1
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis/socket failure: resubscribe; the cache is reset then
                self.connected.clear()
                log.warning("invalidation_disconnected", error=type(exc).__name__, retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self.connected.clear()
                await _quietly_close(pubsub, client)

    def _dispatch(self, message: Mapping[str, object]) -> None:
        channel = message.get("channel")
        name = channel.decode("latin-1") if isinstance(channel, bytes) else str(channel)
        data = message["data"]
        handler = self._handlers.get(name, self._on_message)
        if isinstance(data, bytes | str):
            handler(data)


async def _quietly_close(pubsub: PubSub, client: aioredis.Redis) -> None:
    # Closing a connection that already failed may fail again; that must not end the listener.
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    except Exception as exc:
        log.debug("invalidation_close_failed", error=type(exc).__name__)
