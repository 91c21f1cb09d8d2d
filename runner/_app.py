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
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bundles.blobstore import BlobStore, FilesystemBlobStore
from core.settings import RunnerSettings
from runner._debug import DebugSink, InMemoryDebugSink, MeteredSink
from runner._execute import error_body
from runner._frames import FrameServer
from runner._metrics import Metrics
from runner._services import Services, max_envelope
from runner._ui import UiRoute
from runner.errors import InvalidEnvelope

log = structlog.get_logger(__name__)
AUTH_HEADER = "x-runner-auth"


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
    envelope_max = max_envelope(settings)
    holder: dict[str, Services] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        services = Services.open(settings, metrics=metrics, sink=debug_sink, blobs=blob_store)
        executor = services.executor
        holder["state"] = services
        frames: FrameServer | None = None
        if settings.frame_port is not None:
            frames = FrameServer(
                executor.run_here,
                auth=auth,
                max_envelope=envelope_max,
                idle_s=float(settings.keep_alive_s),
                oversize=error_body(InvalidEnvelope(f"envelope larger than {envelope_max} bytes")),
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
            await services.aclose()

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
