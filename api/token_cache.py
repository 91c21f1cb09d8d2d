"""The lookup cache behind `api.auth.TokenAuthenticator`: what keeps unknown tokens away from Postgres.

Keys are sha256 hex digests of bearer tokens, or "id:<uuid>" for UI-session checks (never the token).

* Hits and misses are cached in two separate LRUs (each `max_entries`): a flood of unknown tokens fills
  the miss side only and cannot evict the tokens that real callers are using.
* Single flight: concurrent requests for the same key share one registry read. The read runs in its own
  task, so a caller that goes away does not cancel it for the others.
* A lookup budget (token bucket, `rate` per second up to `burst`) bounds how many registry reads
  bearer-token misses may start: past it a miss is refused with 503 `registry_unavailable` without a
  query, so random well-formed tokens cannot saturate Postgres (cached tokens keep working).

`counts` tallies outcomes for /metrics: hit, negative_hit, lookup (a registry read), joined (shared a
read in flight), shed (refused by the budget).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from core.errors import Unavailable
from schema.errors import ErrorCode

T = TypeVar("T")


class LookupBudget:
    """A token bucket: `take()` is True while reads are within `rate`/s (bursts up to `burst`)."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1.0, burst)
        self._tokens = self._burst
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class LookupCache(Generic[T]):
    def __init__(
        self,
        *,
        ttl: float,
        negative_ttl: float,
        max_entries: int,
        budget: LookupBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max = max_entries
        self._budget = budget
        self._clock = clock
        self._hits: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[T | None]] = {}
        self._generation = 0  # bumped by forget(): a read that started before must not refill the cache
        self.counts: Counter[str] = Counter()

    async def get(self, key: str, load: Callable[[], Awaitable[T | None]], *, budgeted: bool) -> T | None:
        now = self._clock()
        hit = self._hits.get(key)
        if hit is not None and hit[0] > now:
            self.counts["hit"] += 1
            return hit[1]
        until = self._misses.get(key)
        if until is not None and until > now:
            self.counts["negative_hit"] += 1
            return None
        task = self._inflight.get(key)
        if task is not None:
            self.counts["joined"] += 1
        else:
            if budgeted and self._budget is not None and not self._budget.take():
                self.counts["shed"] += 1
                raise Unavailable(
                    "too many unknown tokens are being checked right now; retry shortly",
                    code=ErrorCode.REGISTRY_UNAVAILABLE,
                )
            task = asyncio.ensure_future(self._load(key, load, self._generation))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: str, load: Callable[[], Awaitable[T | None]], generation: int) -> T | None:
        try:
            self.counts["lookup"] += 1
            value = await load()
            if generation == self._generation:
                self._store(key, value)
            return value
        finally:
            self._inflight.pop(key, None)

    def _store(self, key: str, value: T | None) -> None:
        now = self._clock()
        if value is None:
            self._hits.pop(key, None)
            self._misses[key] = now + self._negative_ttl
            self._misses.move_to_end(key)
            while len(self._misses) > self._max:
                self._misses.popitem(last=False)
            return
        self._misses.pop(key, None)
        self._hits[key] = (now + self._ttl, value)
        self._hits.move_to_end(key)
        while len(self._hits) > self._max:
            self._hits.popitem(last=False)

    def forget_where(self, match: Callable[[str, T], bool]) -> None:
        """Drop the cached hits that `match(key, value)` selects, and refill none from reads in flight."""
        self._generation += 1
        for key in [k for k, (_, value) in self._hits.items() if match(k, value)]:
            del self._hits[key]

    def forget(self, keys: list[str]) -> None:
        """Drop the cached lookups of `keys` (all when empty)."""
        self._generation += 1
        if not keys:
            self._hits.clear()
            self._misses.clear()
        for k in keys:
            self._hits.pop(k, None)
            self._misses.pop(k, None)


def _retrieve(task: asyncio.Task[object]) -> None:
    # A read whose every waiter went away must not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()
