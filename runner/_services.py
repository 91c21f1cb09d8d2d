"""What one runner holds open, built the same way wherever guests run: the engine with its host
services, the Postgres storage pool, the egress client, the component cache, the guest threads and
the executor over them.

`python -m runner` (runner._app) and the co-located mode (runner.local, guests inside a gateway
process) both build it here, so a guest gets the same limits, capabilities and answers either way.
"""

from __future__ import annotations

import asyncio
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bundles.blobstore import BlobStore
from core.crypto import Keyring
from core.settings import RunnerSettings
from runner._admission import Admission
from runner._debug import DebugSink, InMemoryDebugSink
from runner._debug_redis import RedisDebugSink
from runner._egress import EgressClient, EgressPolicy
from runner._engine import Runtime
from runner._execute import Executor
from runner._host import HostServices
from runner._inline import InlinePolicy
from runner._loader import ComponentCache
from runner._metrics import Metrics
from runner._secrets import SecretsCache
from runner._storage import PgStorage, Quotas


def egress_policy(settings: RunnerSettings) -> EgressPolicy:
    return EgressPolicy(
        operator_allow=tuple(settings.egress_allow),
        allow_http=settings.egress_allow_http,
        allow_private=settings.egress_allow_private,
        allow_cidrs=tuple(ipaddress.ip_network(c, strict=False) for c in settings.egress_allow_cidrs),
        resolve={k.lower(): v for k, v in settings.egress_resolve.items()},
        timeout_s=settings.egress_timeout_ms / 1000.0,
        max_response_bytes=settings.egress_max_response_bytes,
        max_redirects=settings.egress_max_redirects,
    )


def max_envelope(settings: RunnerSettings) -> int:
    """The largest envelope accepted: a base64 body of max_request_bytes plus the rest."""
    return settings.max_request_bytes * 4 // 3 + 256 * 1024


def debug_sink_of(settings: RunnerSettings) -> tuple[DebugSink, RedisDebugSink | None]:
    """The sink EXT_DEBUG_SINK names, and the Redis one again when it must be started and closed."""
    if settings.debug_sink != "redis":
        return InMemoryDebugSink(), None
    sink = RedisDebugSink(
        settings.debug_redis,
        prefix=settings.debug_stream_prefix,
        maxlen=settings.debug_stream_maxlen,
        buffer_events=settings.debug_buffer_events,
        batch_events=settings.debug_batch_events,
        retry_max_s=settings.debug_retry_max_seconds,
    )
    return sink, sink


@dataclass
class Services:
    executor: Executor
    runtime: Runtime
    storage: PgStorage
    egress: EgressClient
    pool: ThreadPoolExecutor

    @classmethod
    def open(
        cls,
        settings: RunnerSettings,
        *,
        metrics: Metrics,
        sink: DebugSink,
        blobs: BlobStore,
        inline: InlinePolicy | None = None,
    ) -> Services:
        """Build everything; call on the event loop that storage calls will run on. `inline` (the
        co-located mode's) lets Executor.start run short calls on that loop's thread."""
        master = settings.master_keys.get_secret_value()
        keyring = Keyring.parse(master) if master else None
        runtime = Runtime(settings)
        storage = PgStorage(
            settings.database_url,
            asyncio.get_running_loop(),
            Quotas(
                max_value_bytes=settings.storage_max_value_bytes,
                max_keys=settings.storage_max_keys,
                max_bytes=settings.storage_max_bytes,
            ),
            pool_size=settings.threads + 1,
            op_timeout_s=settings.storage_timeout_ms / 1000.0,
        )
        egress = EgressClient(egress_policy(settings))
        runtime.link(
            HostServices(
                secrets=SecretsCache(keyring, entries=settings.secrets_cache_entries),
                storage=storage,
                egress=egress,
                on_denied=lambda cap: metrics.denied.labels(cap).inc(),
            )
        )

        def on_load(precompiled: bool, size: float) -> None:
            metrics.loads.labels("artifact" if precompiled else "compiled").observe(size)

        cache = ComponentCache(
            runtime.engine, blobs, max_bytes=settings.component_cache_bytes, on_load=on_load
        )
        pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="guest")
        executor = Executor(
            runtime=runtime,
            cache=cache,
            pool=pool,
            admission=Admission(
                threads=settings.threads, queue_depth=settings.queue_depth, tenant_share=settings.tenant_share
            ),
            metrics=metrics,
            sink=sink,
            max_envelope=max_envelope(settings),
            inline=inline,
        )
        return cls(executor=executor, runtime=runtime, storage=storage, egress=egress, pool=pool)

    async def aclose(self) -> None:
        """After the last call: the guest threads first (a running guest may still use storage)."""
        await asyncio.to_thread(self.pool.shutdown, wait=True, cancel_futures=True)
        await self.storage.aclose()
        self.egress.close()
        self.runtime.close()
