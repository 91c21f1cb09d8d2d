"""Token-bucket rate limit per (tenant, extension), in Redis, one round trip per call (EVALSHA).

The bucket is a hash {t: tokens, ts: last refill in ms}. The script refills by elapsed time at `rps`
up to `burst`, takes one token if it can, and otherwise reports how long until one is available. It
reads the clock with Redis `TIME`, so gateways with skewed clocks share one consistent bucket. Keys
expire once a full bucket would have refilled, so idle installs cost no memory.

Fail closed: when Redis cannot answer (within gateway_redis_timeout_ms), the call is refused with 503
rate_limiter_unavailable. The command goes through api.gateway.resp (a minimal RESP client: a third of
redis-py's CPU per call); a stale pooled connection is retried once on a fresh one, with no backoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from api.gateway.errors import RateLimiterUnavailable
from api.gateway.resp import RespClient, RespError

TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
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
  tokens = tokens - 1
  allowed = 1
else
  retry_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, retry_ms, math.floor(tokens)}
"""

MIN_RPS = 0.001


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int  # whole seconds, >= 1 when refused (HTTP Retry-After)
    remaining: int


def bucket_key(tenant_id: str, extension: str) -> str:
    # Extension names cannot contain '|' (schema.manifest.NAME_RE), so the key is unambiguous.
    return f"extplane:rl:{extension}|{tenant_id}"


class RateLimiter:
    def __init__(self, client: RespClient) -> None:
        self._client = client

    async def take(self, tenant_id: str, extension: str, *, rps: float, burst: int) -> Decision:
        rate = max(rps, MIN_RPS)
        try:
            allowed, retry_ms, remaining = await self._client.evalsha(
                TOKEN_BUCKET, [bucket_key(tenant_id, extension)], [repr(rate), str(max(burst, 1))]
            )
        except (RespError, ValueError) as exc:
            raise RateLimiterUnavailable(f"rate limiter unavailable: {exc}") from exc
        return Decision(
            allowed=bool(allowed),
            retry_after_s=max(1, math.ceil(retry_ms / 1000)) if not allowed else 0,
            remaining=remaining,
        )
