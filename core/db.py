"""asyncpg connection helpers. Callers never catch asyncpg exceptions: `map_db_errors` translates
them at the seam into core errors (connection trouble becomes `Unavailable`, retryable)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from core.errors import Unavailable
from schema.errors import ErrorCode


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, not JSON text.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb. Raises Unavailable when Postgres is unreachable."""
    async with map_db_errors():
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs
        )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    async with map_db_errors():
        conn = await asyncpg.connect(dsn)
        await _init_connection(conn)
    return conn


_TRANSIENT = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # connection lost or refused mid-protocol
    asyncpg.exceptions.OperatorInterventionError,  # starting up, shutting down (admin/crash shutdown)
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,  # e.g. the pool was closed under us
)


@asynccontextmanager
async def map_db_errors() -> AsyncIterator[None]:
    """Translate connection-level failures into `Unavailable`; SQL errors stay asyncpg's to classify."""
    try:
        yield
    except _TRANSIENT as exc:
        raise Unavailable(
            f"registry database unavailable: {type(exc).__name__}", code=ErrorCode.REGISTRY_UNAVAILABLE
        ) from exc
