"""Redis connection helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import redis.exceptions

from core.errors import Unavailable


def create_redis(url: str, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """A client with short timeouts: callers on the hot path must fail fast, not hang."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=False
    )


@asynccontextmanager
async def map_redis_errors() -> AsyncIterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise Unavailable(f"redis unavailable: {type(exc).__name__}") from exc
