"""The runner's HTTP surface: `POST /v1/execute`, `GET /healthz`, `GET /metrics`.

Plain Starlette rather than FastAPI: the hot path is one route whose body is already a pydantic
model, and TOOLCHAIN.md measured FastAPI's per-request overhead at ~2x Starlette's. Executions run on
a bounded thread pool behind runner._admission: beyond `threads + queue_depth` admitted requests, or
beyond one tenant's share of them, the runner answers 503 `runner_busy` at once instead of queueing.

An execution's deadline starts at admission (waiting for a thread counts). While it waits or runs, the
connection is watched: when the caller goes away (the gateway gave up and closed it) the execution
leaves the queue, or its guest is ended at the next deadline check, so abandoned work frees its slot.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bundles.blobstore import BlobStore, FilesystemBlobStore
from core.crypto import Keyring
from core.settings import RunnerSettings
from runner._admission import Admission
from runner._debug import DebugSink, InMemoryDebugSink, MeteredSink
from runner._egress import EgressClient, EgressPolicy
from runner._engine import Runtime
from runner._execute import Executor, error_body
from runner._frames import FrameServer
from runner._host import HostServices
from runner._loader import ComponentCache
from runner._metrics import Metrics
from runner._secrets import SecretsCache
from runner._storage import PgStorage, Quotas
from runner._ui import UiRoute
from runner.errors import InvalidEnvelope

log = structlog.get_logger(__name__)
AUTH_HEADER = "x-runner-auth"


@dataclass
class _State:
    executor: Executor
    storage: PgStorage
    egress: EgressClient


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


def create_app(
    settings: RunnerSettings, *, sink: DebugSink | None = None, blobs: BlobStore | None = None
) -> Starlette:
    """Build the runner ASGI app; the engine, threads and pools start with the app's lifespan."""
    metrics = Metrics.create()
    debug_sink: DebugSink = sink if sink is not None else InMemoryDebugSink()
    if isinstance(debug_sink, MeteredSink):
        metrics.registry.register(debug_sink.collector())
    blob_store: BlobStore = blobs if blobs is not None else FilesystemBlobStore(settings.data_dir / "blobs")
    auth = settings.runner_auth.get_secret_value().encode()
    master = settings.master_keys.get_secret_value()
    keyring = Keyring.parse(master) if master else None
    max_envelope = settings.max_request_bytes * 4 // 3 + 256 * 1024
    holder: dict[str, _State] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
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
            runtime.engine, blob_store, max_bytes=settings.component_cache_bytes, on_load=on_load
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
            sink=debug_sink,
            max_envelope=max_envelope,
        )
        holder["state"] = _State(executor=executor, storage=storage, egress=egress)
        frames: FrameServer | None = None
        if settings.frame_port is not None:
            frames = FrameServer(
                executor.run_here,
                auth=auth,
                max_envelope=max_envelope,
                idle_s=float(settings.keep_alive_s),
                oversize=error_body(InvalidEnvelope(f"envelope larger than {max_envelope} bytes")),
                max_connections=settings.frame_max_connections,
            )
            frames.start(settings.host, settings.frame_port)
        log.info(
            "runner_started",
            threads=settings.threads,
            queue_depth=settings.queue_depth,
            tenant_share=settings.tenant_share,
        )
        try:
            yield
        finally:
            if frames is not None:
                # Off the loop: a framed guest mid-call may need it (storage runs on it) to finish.
                await asyncio.to_thread(frames.close, join_s=settings.max_timeout_ms / 1000.0 + 1.0)
            pool.shutdown(wait=True, cancel_futures=True)
            await storage.aclose()
            egress.close()
            runtime.close()

    async def execute(request: Request) -> Response:
        given = request.headers.get(AUTH_HEADER, "").encode()
        if not hmac.compare_digest(given, auth):
            return JSONResponse({"error": "unauthenticated", "message": "bad or missing x-runner-auth"}, 401)
        raw = await request.body()
        # Watch the connection from here on: a caller that leaves must not keep its slot.
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            status, body = await holder["state"].executor.run(raw, gone)
        finally:
            gone.cancel()
        return Response(body, status_code=status, media_type="application/json")

    async def healthz(_request: Request) -> Response:
        state = holder.get("state")
        if state is None:
            return JSONResponse({"status": "starting"}, 503)
        stats = state.executor.cache.stats()
        return JSONResponse(
            {
                "status": "ok",
                "admitted": state.executor.admission.admitted,
                "running": state.executor.admission.running,
                "components": stats.entries,
                "cache_bytes": stats.bytes,
            }
        )

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/v1/execute", execute, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route(
                "/ext-ui/{name}/{content_hash}/{path:path}",
                UiRoute(
                    blob_store,
                    auth=auth,
                    gateway_url=settings.gateway_url,
                    max_bundles=settings.ui_cache_bundles,
                ).serve,
                methods=["GET"],
            ),
        ],
        lifespan=lifespan,
    )
    app.state.debug_sink = debug_sink
    return app


async def _disconnected(receive: Callable[[], Awaitable[MutableMapping[str, object]]]) -> None:
    """Returns when the client has closed the connection (the body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
