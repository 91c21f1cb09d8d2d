"""Token-bucket rate limit per (tenant, extension), in Redis, with short in-process token leases.

The bucket is a hash {t: tokens, ts: last refill in ms}. The script refills by elapsed time at `rps`
up to `burst`, takes up to `want` tokens if it can (at least one), and otherwise reports how long
until one is available. It reads the clock with Redis `TIME`, so gateways with skewed clocks share
one consistent bucket. Keys expire once a full bucket would have refilled, so idle installs cost no
memory.

Leases (issue 14): the Redis round trip was 25-33 % of the gateway's CPU per call
(docs/performance.md). A call that finds no local token takes a lease of `lease_size(rps, burst)`
tokens from the shared bucket and the next calls of that (tenant, extension) on this gateway spend
them in-process until the lease is used up or LEASE_WINDOW_S has passed. Every token spent was taken
from the shared bucket, so the global limit holds across any number of gateways; an expired lease's
unspent tokens are dropped, never returned, which errs on the refusing side: a gateway can hold back at
most lease_size - 1 tokens per window from the others. The lease is at most MAX_LEASE, an eighth of
the burst and LEASE_WINDOW_S of the rate, so a low-rate install (and every rate below 1/LEASE_WINDOW_S per
second) still makes one round trip per call, exactly as before.

Fail closed: when Redis cannot answer (within gateway_redis_timeout_ms), the call is refused with 503
rate_limiter_unavailable. The command goes through api.gateway.resp (a minimal RESP client: a third of
redis-py's CPU per call); a stale pooled connection is retried once on a fresh one, with no backoff.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from api.gateway.errors import RateLimiterUnavailable
from api.gateway.resp import RespClient, RespError

TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local allowed = 0
local retry_ms = 0
if tokens >= 1 then
  allowed = math.min(want, math.floor(tokens))
  tokens = tokens - allowed
else
  retry_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, retry_ms, math.floor(tokens)}
"""

MIN_RPS = 0.001
# How long leased tokens stay spendable in one gateway: short against any Retry-After (>= 1 s), so a
# lease never lets a gateway answer for long on tokens the shared bucket no longer reflects.
LEASE_WINDOW_S = 0.1
# The most a lease holds whatever the rate: what one gateway can keep from the others per window is
# MAX_LEASE - 1 tokens, and 16 calls per round trip already take the limiter out of the profile.
MAX_LEASE = 16


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int  # whole seconds, >= 1 when refused (HTTP Retry-After)
    remaining: int


def bucket_key(tenant_id: str, extension: str) -> str:
    # Extension names cannot contain '|' (schema.manifest.NAME_RE), so the key is unambiguous.
    return f"extplane:rl:{extension}|{tenant_id}"


def lease_size(rps: float, burst: int) -> int:
    """Tokens one round trip takes: the rate over LEASE_WINDOW_S, at most burst // 8 and MAX_LEASE."""
    return max(1, min(int(rps * LEASE_WINDOW_S), max(burst, 1) // 8, MAX_LEASE))


@dataclass(slots=True)
class _Lease:
    tokens: int
    expires: float  # time.monotonic()
    shared_remaining: int  # what the shared bucket held after this lease was taken
    limits: tuple[float, int]  # (rps, burst) it was taken under: a change of limits drops the lease


class RateLimiter:
    def __init__(self, client: RespClient) -> None:
        self._client = client
        self._leases: dict[str, _Lease] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._trips = 0

    @property
    def round_trips(self) -> int:
        """Redis round trips made so far (the tests count calls per round trip with it)."""
        return self._trips

    async def take(self, tenant_id: str, extension: str, *, rps: float, burst: int) -> Decision:
        rate = max(rps, MIN_RPS)
        cap = max(burst, 1)
        key = bucket_key(tenant_id, extension)
        while True:
            local = self._spend(key, (rate, cap))
            if local is not None:
                return local
            pending = self._pending.get(key)
            if pending is None:
                break
            # Single flight: calls arriving while a lease is being taken wait for it instead of
            # each taking a lease of their own (c concurrent misses would drain c leases at once).
            await asyncio.wait([pending])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            return await self._lease(key, rate, cap)
        finally:
            del self._pending[key]
            done.set_result(None)

    def _spend(self, key: str, limits: tuple[float, int]) -> Decision | None:
        lease = self._leases.get(key)
        if lease is None or lease.tokens <= 0 or lease.limits != limits or time.monotonic() >= lease.expires:
            return None
        lease.tokens -= 1
        return Decision(allowed=True, retry_after_s=0, remaining=lease.shared_remaining + lease.tokens)

    async def _lease(self, key: str, rate: float, cap: int) -> Decision:
        self._trips += 1
        try:
            taken, retry_ms, remaining = await self._client.evalsha(
                TOKEN_BUCKET, [key], [repr(rate), str(cap), str(lease_size(rate, cap))]
            )
        except (RespError, ValueError) as exc:
            raise RateLimiterUnavailable(f"rate limiter unavailable: {exc}") from exc
        if not taken:
            self._leases.pop(key, None)
            return Decision(
                allowed=False, retry_after_s=max(1, math.ceil(retry_ms / 1000)), remaining=remaining
            )
        if taken > 1:
            self._leases[key] = _Lease(taken - 1, time.monotonic() + LEASE_WINDOW_S, remaining, (rate, cap))
        else:
            self._leases.pop(key, None)
        return Decision(allowed=True, retry_after_s=0, remaining=remaining + taken - 1)
