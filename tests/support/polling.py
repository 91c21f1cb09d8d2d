"""Waiting for something asynchronous to become true, without sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def eventually(check: Any, *, deadline_s: float = 15.0, interval_s: float = 0.05) -> Any:
    """Poll an async predicate until it returns a truthy value (returned) or the deadline passes.

    The deadline is a liveness bound for a test that would otherwise hang, never a speed claim: keep it
    far above any plausible latency (speed is measured in bench/).
    """
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {deadline_s}s; last value: {last!r}")
