"""A small in-process TTL cache with single-flight loads and race-free invalidation.

* Single flight: concurrent misses for one key share one load (one Postgres query, not a stampede).
* Invalidation races: a load that started before an invalidation of its key must not store what it
  read (it may predate the change). Each key carries a generation bumped by `invalidate`; a load stores
  its result only if the generation it started with is still current.
* Bounded: past `max_entries` the oldest entries are evicted (dicts keep insertion order), so a caller
  guessing names cannot grow memory without limit.
* Negative results (None) are cached too, with their own (shorter) TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, *, ttl_s: float, negative_ttl_s: float, max_entries: int) -> None:
        self._ttl = ttl_s
        self._neg_ttl = negative_ttl_s
        self._max = max_entries
        self._entries: dict[K, tuple[float, V | None]] = {}
        self._loading: dict[K, asyncio.Future[V | None]] = {}
        self._gen: dict[K, int] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, key: K, load: Callable[[], Awaitable[V | None]], *, ttl_of: Callable[[V], float] | None = None
    ) -> V | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            self.hits += 1
            return entry[1]
        self.misses += 1
        while (pending := self._loading.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this waiter was cancelled, not the shared load
                # the leading request was cancelled mid-load: load again ourselves
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        gen = self._gen.get(key, 0)
        try:
            value = await load()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it, and there may be none
            raise
        finally:
            del self._loading[key]
            stale = self._gen.pop(key, 0) != gen
        if not stale:
            ttl = self._neg_ttl if value is None else (ttl_of(value) if ttl_of else self._ttl)
            if ttl > 0:
                self._store(key, time.monotonic() + ttl, value)
        fut.set_result(value)
        return value

    def _store(self, key: K, expires: float, value: V | None) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (expires, value)
        while len(self._entries) > self._max:
            oldest = next(iter(self._entries))
            del self._entries[oldest]

    def peek(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
        # Only keys with a load in flight need a generation bump; others have nothing to protect.
        if key in self._loading:
            self._gen[key] = self._gen.get(key, 0) + 1

    def clear(self) -> None:
        self._entries.clear()
        for key in self._loading:
            self._gen[key] = self._gen.get(key, 0) + 1
