"""Per-app resources (asyncpg pool, Temporal client, keyring) and their FastAPI dependencies.

Resources connect lazily on first use, so the API starts (and answers /healthz) while Postgres or
Temporal is still coming up, and a Temporal outage turns into 503 control_plane_unavailable per request
instead of a crash. A failed connect is not cached: the next request tries again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from temporalio.client import Client
from temporalio.converter import DataConverter

from api.errors import control_plane_unavailable
from api.operator.settings import OperatorSettings
from core.codec import data_converter
from core.crypto import Keyring
from core.db import create_pool
from core.errors import Unavailable
from core.temporal import connect_temporal


class Resources:
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        keys = settings.master_keys.get_secret_value()
        self.keyring: Keyring | None = Keyring.parse(keys) if keys else None
        self.converter: DataConverter = (
            data_converter(self.keyring) if self.keyring is not None else DataConverter.default
        )
        self._pool: asyncpg.Pool | None = None
        self._temporal: Client | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(self.settings.database_url, min_size=1, max_size=10)
        return self._pool

    async def temporal(self) -> Client:
        if self._temporal is None:
            async with self._lock:
                if self._temporal is None:
                    try:
                        self._temporal = await connect_temporal(
                            self.settings.temporal_address,
                            namespace=self.settings.temporal_namespace,
                            data_converter=self.converter,
                        )
                    except Unavailable as exc:
                        raise control_plane_unavailable(exc.message) from exc
        return self._temporal

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._temporal = None  # the client has no close(); its connection drops with the process


def _resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


async def get_pool(request: Request) -> asyncpg.Pool:
    return await _resources(request).pool()


async def get_temporal(request: Request) -> Client:
    return await _resources(request).temporal()


def get_settings(request: Request) -> OperatorSettings:
    return _resources(request).settings


def get_resources(request: Request) -> Resources:
    return _resources(request)


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SettingsDep = Annotated[OperatorSettings, Depends(get_settings)]
ResourcesDep = Annotated[Resources, Depends(get_resources)]
