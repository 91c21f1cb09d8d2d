"""Invalidation messages to gateways (Redis pub/sub). At least once: gateways compare revisions."""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from temporalio import activity

from activities._errors import activity_errors
from core.redis import map_redis_errors
from schema.payloads.notify import INVALIDATE_CHANNEL, InvalidateInput, InvalidateResult


class NotifyActivities:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    @activity.defn(name="publish_invalidation")
    async def publish_invalidation(self, inp: InvalidateInput) -> InvalidateResult:
        message = json.dumps(
            {
                "tenant_id": inp.tenant_id,
                "extension": inp.extension,
                "install_id": inp.install_id,
                "revision": inp.revision,
            },
            separators=(",", ":"),
        )
        with activity_errors():
            async with map_redis_errors():
                receivers = await self.redis.publish(INVALIDATE_CHANNEL, message)
        return InvalidateResult(receivers=int(receivers))
