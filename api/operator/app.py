"""The operator API app factory: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import TokenAuthenticator
from api.errors import install_error_handlers
from api.middleware import RequestIdMiddleware
from api.operator.deps import Resources
from api.operator.openapi import install_openapi
from api.operator.routes import (
    audit,
    bundles,
    debug_sessions,
    executions,
    extensions,
    health,
    installs,
    master_key,
    namespaces,
    operations,
    rollouts,
    schedules,
    tokens,
    trust,
)
from api.operator.settings import OperatorSettings
from core.settings import ApiSettings

V1_ROUTERS = (
    bundles,
    extensions,
    installs,
    trust,
    namespaces,
    master_key,
    rollouts,
    schedules,
    tokens,
    audit,
    operations,
    debug_sessions,
    executions,
)


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the app; resources (pool, Temporal client) connect lazily and close on shutdown."""
    op_settings = OperatorSettings.of(settings)
    resources = Resources(op_settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await resources.aclose()

    app = FastAPI(
        title="extplane operator API",
        version="1",
        description="Publish bundles, manage installs, trust keys, tokens; read audit and operations.",
        lifespan=lifespan,
    )
    app.state.resources = resources
    app.state.authenticator = TokenAuthenticator(
        admin_token=op_settings.admin_token, pool=resources.pool, ttl=op_settings.token_cache_seconds
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    for module in V1_ROUTERS:
        app.include_router(module.router, prefix="/v1")
    install_openapi(app)
    return app
