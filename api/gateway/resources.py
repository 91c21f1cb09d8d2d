"""What one gateway process holds open: the Postgres pool, the limiter's Redis client, the caches, the
invalidation listener, the execution-log writer and the runner connection pool."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import asyncpg

from api.auth import TokenAuthenticator
from api.gateway.auth import GatewayAuth
from api.gateway.execlog import ExecLogWriter
from api.gateway.installs import InstallResolver, InvalidationListener
from api.gateway.metrics import GatewayMetrics
from api.gateway.ratelimit import RateLimiter
from api.gateway.resp import RespClient
from api.gateway.runner_client import RunnerHop, RunnerPool
from core.db import create_pool
from core.settings import ApiSettings
from schema.payloads.tokens import TOKEN_INVALIDATE_CHANNEL


@dataclass
class Resources:
    pool: asyncpg.Pool
    limiter_client: RespClient
    auth: GatewayAuth
    installs: InstallResolver
    limiter: RateLimiter
    listener: InvalidationListener
    execlog: ExecLogWriter
    runner: RunnerHop
    metrics: GatewayMetrics

    @classmethod
    async def open(cls, settings: ApiSettings) -> Resources:
        metrics = GatewayMetrics.create()
        # Cache misses and log batches only: a small pool suffices for a process serving thousands of rps.
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        # Named connections: CLIENT LIST shows which gateway process holds which.
        name = f"extplane-gateway-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        client = RespClient(
            settings.redis_url,
            timeout_s=settings.gateway_redis_timeout_ms / 1000.0,
            client_name=name + "-limiter",
        )
        installs = InstallResolver(
            pool,
            default_rps=settings.rate_limit_rps,
            default_burst=settings.rate_limit_burst,
            ttl_s=settings.gateway_install_ttl_s,
            negative_ttl_s=settings.gateway_install_negative_ttl_s,
            max_entries=settings.gateway_install_cache_entries,
        )

        async def pool_of() -> asyncpg.Pool:
            return pool

        auth = GatewayAuth(
            TokenAuthenticator(
                admin_token=settings.admin_token,
                pool=pool_of,
                ttl=settings.gateway_token_ttl_s,
                negative_ttl=settings.gateway_token_negative_ttl_s,
                max_entries=settings.gateway_token_cache_entries,
                lookups_per_s=settings.gateway_token_lookups_per_s,
                lookup_burst=settings.gateway_token_lookup_burst,
            )
        )

        def reset() -> None:
            installs.cache.clear()
            auth.reset()

        listener = InvalidationListener(
            settings.redis_url,
            installs.on_message,
            reset,
            client_name=name + "-invalidations",
            extra={TOKEN_INVALIDATE_CHANNEL: auth.on_token_message},
        )
        execlog = ExecLogWriter(
            pool,
            metrics,
            max_queue=settings.gateway_log_queue,
            batch=settings.gateway_log_batch,
            flush_ms=settings.gateway_log_flush_ms,
        )
        runner = _runner_hop(settings)
        metrics.register_caches(installs.cache, listener.connected, tokens=auth.authenticator.cache.counts)
        listener.start()
        execlog.start()
        return cls(
            pool=pool,
            limiter_client=client,
            auth=auth,
            installs=installs,
            limiter=RateLimiter(client),
            listener=listener,
            execlog=execlog,
            runner=runner,
            metrics=metrics,
        )

    async def close(self) -> None:
        await self.listener.stop()
        await self.execlog.stop()
        await self.runner.aclose()
        await self.limiter_client.aclose()
        await self.pool.close()


def _runner_hop(settings: ApiSettings) -> RunnerHop:
    if settings.colocated:
        from api.gateway.colocated import ColocatedRunner  # the engine loads only in this mode

        return ColocatedRunner.open()
    return RunnerPool.from_setting(
        settings.runner_url,
        auth=settings.runner_auth.get_secret_value(),
        max_connections=settings.gateway_runner_connections,
        idle_s=settings.gateway_runner_idle_s,
        connect_timeout_s=settings.gateway_runner_connect_timeout_ms / 1000.0,
        tenant_share=settings.tenant_share,
    )
