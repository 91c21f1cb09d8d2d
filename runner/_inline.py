"""Which co-located calls run on the event loop's own thread (runner.local, EXT_LOCAL_INLINE_US).

Why: in a co-located gateway every wasmtime C call releases the GIL, so a guest on a pool thread and
the event loop hand the GIL to each other many times per call; docs/performance.md measured that
hand-off as a third of a cheap call's CPU. A call that runs on the loop's thread pays none of it, but
nothing else in the process runs until it returns. So only calls known to be short run there:

* the install grants no capability that waits on I/O: `cap:storage.kv` runs its queries on this very
  loop (it would deadlock) and `cap:http.fetch` waits on the network;
* the same install of the same component has finished `warmup` calls in a row, each under `budget_s`
  of CPU time on its thread (Store, instantiate and guest; the pool runs the first ones, which is
  how they are learnt). CPU, not wall time: on a busy pool the wall time counts waits for the CPU
  and the GIL, which an inline call does not have. But a call that waited long without the CPU
  (over `WAITED_BUDGETS` budgets of wall time: a host call that blocks) does
  not qualify either, nor does an inline call that held the loop over `HELD_BUDGETS` budgets;
* it got a thread at once (a queued call waits on the loop, as any other).

A call over the budget sends that install back to the pool for `cool_down_s`. The worst case, a guest
that was fast and then is not, holds its process once, for at most its own timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from schema.capabilities import Capability
from schema.envelope import ExecuteRequest

WAITS_ON_IO = frozenset({Capability.STORAGE_KV.value, Capability.HTTP_FETCH.value})
# Wall time counts only beyond these many budgets: below, it is the wait for the CPU (a busy host
# preempts even an inline call) and, on the pool, for the GIL; beyond, the call blocked.
WAITED_BUDGETS = 50  # a pooled call
HELD_BUDGETS = 10  # an inline call: how long it held the loop


@dataclass(slots=True)
class _Record:
    fast_calls: int = 0
    pooled_until: float = 0.0


class InlinePolicy:
    """Single-threaded: asked and told on the event loop only."""

    def __init__(
        self, *, budget_s: float, warmup: int = 8, cool_down_s: float = 60.0, max_entries: int = 10_000
    ) -> None:
        self.budget_s = budget_s
        self._warmup = warmup
        self._cool_down_s = cool_down_s
        self._max_entries = max_entries
        self._records: dict[tuple[str, str], _Record] = {}

    def allows(self, envelope: ExecuteRequest) -> bool:
        if self.budget_s <= 0.0:
            return False
        record = self._records.get(_key(envelope))
        if record is None or record.fast_calls < self._warmup or time.monotonic() < record.pooled_until:
            return False
        return not WAITS_ON_IO.intersection(envelope.capabilities.granted)

    def observe(self, envelope: ExecuteRequest, *, cpu_s: float, wall_s: float, inline: bool) -> None:
        """A finished call's CPU and wall time on its thread; `inline`: it ran on the loop's."""
        key = _key(envelope)
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self._max_entries:
                del self._records[next(iter(self._records))]  # the oldest entry: a bound, not an LRU
            record = self._records[key] = _Record()
        waited = wall_s / (HELD_BUDGETS if inline else WAITED_BUDGETS)
        if max(cpu_s, waited) > self.budget_s:
            record.fast_calls = 0
            record.pooled_until = time.monotonic() + self._cool_down_s
        else:
            record.fast_calls += 1


def _key(envelope: ExecuteRequest) -> tuple[str, str]:
    return envelope.context.install_id, envelope.context.content_hash
