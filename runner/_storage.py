"""Key/value storage for guests (`cap:storage.kv`): table `storage_records`, scoped to one install.

Bridging: host functions run on executor threads, while asyncpg lives on the runner's event loop.
Each call submits a coroutine to that loop with `asyncio.run_coroutine_threadsafe` and waits for it,
bounded by the execution's remaining deadline. One asyncpg pool serves every executor thread, no
second Postgres driver is needed, and the loop is free to do it because guests run on the executor.

Quotas per install (keys, total bytes) and per value are checked inside the write's transaction under
an advisory lock on the install, so concurrent writers cannot overshoot them together.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from core.db import create_pool

T = TypeVar("T")
MAX_PAGE = 100


class StorageFailure(Exception):
    """`case` is the WIT `storage-error` case; `payload` its payload (u64 or string) if any."""

    def __init__(self, case: str, payload: int | str | None = None) -> None:
        super().__init__(f"{case}: {payload}" if payload is not None else case)
        self.case = case
        self.payload = payload


@dataclass(frozen=True, kw_only=True)
class Entry:
    key: str
    value: str
    revision: int


@dataclass(frozen=True, kw_only=True)
class Quotas:
    max_value_bytes: int
    max_keys: int
    max_bytes: int


def _validate(install_id: str, namespace: str, key: str | None = None) -> uuid.UUID:
    if not 1 <= len(namespace) <= 128:
        raise StorageFailure("invalid", "namespace must be 1..128 characters")
    if key is not None and not 1 <= len(key) <= 256:
        raise StorageFailure("invalid", "key must be 1..256 characters")
    try:
        return uuid.UUID(install_id)
    except ValueError:
        raise StorageFailure("invalid", "the install has no storage (install id is not a uuid)") from None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    if not cursor:
        return ""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise StorageFailure("invalid", "malformed cursor") from None


class PgStorage:
    """Synchronous facade (for executor threads) over asyncpg on the runner's event loop."""

    def __init__(
        self,
        dsn: str,
        loop: asyncio.AbstractEventLoop,
        quotas: Quotas,
        *,
        pool_size: int,
        op_timeout_s: float = 2.0,
    ) -> None:
        self._dsn = dsn
        self._loop = loop
        self._quotas = quotas
        self._pool_size = pool_size
        self._op_timeout_s = op_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        # Lazy: the runner starts (and serves guests without storage) even while Postgres is down.
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await create_pool(self._dsn, min_size=1, max_size=self._pool_size)
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _run(self, make: Callable[[asyncpg.Pool], Awaitable[T]], timeout_s: float) -> T:
        async def job() -> T:
            return await make(await self._get_pool())

        if timeout_s <= 0:
            raise StorageFailure("internal", "no time left before the deadline")
        timeout_s = min(timeout_s, self._op_timeout_s)
        future = asyncio.run_coroutine_threadsafe(job(), self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            raise StorageFailure("internal", "storage timed out") from None
        except StorageFailure:
            raise
        except asyncpg.ForeignKeyViolationError:
            raise StorageFailure("invalid", "unknown install") from None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise StorageFailure("internal", f"storage unavailable: {type(exc).__name__}") from None
        except Exception as exc:  # core.errors.Unavailable from create_pool, and anything unforeseen
            raise StorageFailure("internal", f"storage unavailable: {type(exc).__name__}") from None

    def get(self, install_id: str, namespace: str, key: str, *, timeout_s: float) -> Entry:
        iid = _validate(install_id, namespace, key)

        async def q(pool: asyncpg.Pool) -> Entry:
            row = await pool.fetchrow(
                "SELECT value, revision FROM storage_records WHERE install_id=$1 AND namespace=$2 AND key=$3",
                iid,
                namespace,
                key,
            )
            if row is None:
                raise StorageFailure("not-found")
            return Entry(key=key, value=row["value"], revision=row["revision"])

        return self._run(q, timeout_s)

    def put(
        self, install_id: str, namespace: str, key: str, value: str, expected: int | None, *, timeout_s: float
    ) -> int:
        iid = _validate(install_id, namespace, key)
        size = len(value.encode("utf-8"))
        if size > self._quotas.max_value_bytes:
            raise StorageFailure(
                "quota-exceeded", f"value is {size} bytes, limit {self._quotas.max_value_bytes}"
            )
        quotas = self._quotas

        async def q(pool: asyncpg.Pool) -> int:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))", str(iid))
                cur = await conn.fetchrow(
                    "SELECT revision, size_bytes FROM storage_records"
                    " WHERE install_id=$1 AND namespace=$2 AND key=$3",
                    iid,
                    namespace,
                    key,
                )
                cur_rev = 0 if cur is None else int(cur["revision"])
                if expected is not None and expected != cur_rev:
                    raise StorageFailure("conflict", cur_rev)
                totals = await conn.fetchrow(
                    "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS b FROM storage_records"
                    " WHERE install_id=$1",
                    iid,
                )
                assert totals is not None
                keys = int(totals["n"]) + (1 if cur is None else 0)
                total = int(totals["b"]) + size - (0 if cur is None else int(cur["size_bytes"]))
                if keys > quotas.max_keys:
                    raise StorageFailure("quota-exceeded", f"more than {quotas.max_keys} keys")
                if total > quotas.max_bytes:
                    raise StorageFailure("quota-exceeded", f"more than {quotas.max_bytes} bytes stored")
                revision = await conn.fetchval(
                    """INSERT INTO storage_records (install_id, namespace, key, value, size_bytes)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (install_id, namespace, key) DO UPDATE
                       SET value = EXCLUDED.value, size_bytes = EXCLUDED.size_bytes,
                           revision = storage_records.revision + 1, updated_at = now()
                       RETURNING revision""",
                    iid,
                    namespace,
                    key,
                    value,
                    size,
                )
                return int(revision)

        return self._run(q, timeout_s)

    def delete(
        self, install_id: str, namespace: str, key: str, expected: int | None, *, timeout_s: float
    ) -> None:
        iid = _validate(install_id, namespace, key)

        async def q(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn, conn.transaction():
                cur = await conn.fetchval(
                    "SELECT revision FROM storage_records WHERE install_id=$1 AND namespace=$2 AND key=$3"
                    " FOR UPDATE",
                    iid,
                    namespace,
                    key,
                )
                if expected is not None and expected != (cur or 0):
                    raise StorageFailure("conflict", int(cur or 0))
                if cur is None:
                    raise StorageFailure("not-found")
                await conn.execute(
                    "DELETE FROM storage_records WHERE install_id=$1 AND namespace=$2 AND key=$3",
                    iid,
                    namespace,
                    key,
                )

        self._run(q, timeout_s)

    def list_page(
        self, install_id: str, namespace: str, cursor: str, limit: int, *, timeout_s: float
    ) -> tuple[list[Entry], str]:
        iid = _validate(install_id, namespace)
        after = decode_cursor(cursor)
        size = MAX_PAGE if limit <= 0 else min(limit, MAX_PAGE)

        async def q(pool: asyncpg.Pool) -> tuple[list[Entry], str]:
            rows = await pool.fetch(
                "SELECT key, value, revision FROM storage_records"
                " WHERE install_id=$1 AND namespace=$2 AND key > $3 ORDER BY key LIMIT $4",
                iid,
                namespace,
                after,
                size + 1,
            )
            entries = [Entry(key=r["key"], value=r["value"], revision=r["revision"]) for r in rows[:size]]
            more = len(rows) > size
            return entries, encode_cursor(entries[-1].key) if more else ""

        return self._run(q, timeout_s)
