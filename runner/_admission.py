"""Admission of executions: at most `threads` run, at most `queue_depth` wait for a thread, and one
tenant holds at most its share (`tenant_share`) of the threads and of all admitted slots.

    enter(tenant) -> place | None   refused at once (RunnerBusy) when every slot is taken or the tenant
                                    already holds its share of them; None: start now; else queued:
    await wait(tenant, place, dl)   returns once a thread is free for it; RunnerBusy if the deadline
                                    passes first, or if `place` was cancelled (the caller left)
    release(tenant)                 the execution's thread is free again: hand it to the next waiter

The threads share is a hard cap: a guest that runs cannot be preempted, so a tenant allowed to take
every idle thread would leave another tenant's call waiting for a whole timeout. Waiters are served
round robin across tenants (FIFO within a tenant), skipping a tenant already running its share, so one
tenant's backlog never sits in front of another's call. Everything runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field

from runner.errors import RunnerBusy


@dataclass
class _Tenant:
    admitted: int = 0
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class Admission:
    def __init__(self, *, threads: int, queue_depth: int, tenant_share: float) -> None:
        self.threads = threads
        self.capacity = threads + queue_depth
        self.tenant_admitted = max(1, int(tenant_share * self.capacity))
        self.tenant_running = max(1, int(tenant_share * threads))
        self.admitted = 0
        self.running = 0
        self._tenants: dict[str, _Tenant] = {}
        self._turns: deque[str] = deque()  # tenants with waiters, in the order they are served

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def enter(self, tenant: str) -> asyncio.Future[None] | None:
        """Admit one execution of `tenant`: None when it may start now, else its place in the queue
        (pass it to `wait`; cancelling it gives the place up).

        Raises RunnerBusy when every slot is taken or the tenant already holds its share."""
        if self.admitted >= self.capacity:
            raise RunnerBusy("all executor threads and queue slots are busy", reason="full")
        t = self._tenants.setdefault(tenant, _Tenant())
        if t.admitted >= self.tenant_admitted:
            raise RunnerBusy("the tenant holds its share of this runner's slots", reason="tenant_share")
        t.admitted += 1
        self.admitted += 1
        if self.running < self.threads and t.running < self.tenant_running and not t.waiting:
            self._start(t)
            return None
        # Queued in the same step as the check: a thread freed from here on is handed to it.
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        t.waiting.append(granted)
        if tenant not in self._turns:
            self._turns.append(tenant)
        return granted

    async def wait(self, tenant: str, granted: asyncio.Future[None], deadline: float) -> None:
        """Wait until the queued execution is given a thread (`deadline`: a time.monotonic() value).

        Raises RunnerBusy when the deadline passes first (reason queued_past_deadline) or when
        `granted` was cancelled, i.e. the caller left (reason abandoned)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():
                self.release(tenant)  # granted in the same instant: hand the thread on
            else:
                granted.cancel()
                with suppress(ValueError):
                    self._tenants[tenant].waiting.remove(granted)
                self._leave(tenant, self._tenants[tenant])
            if isinstance(exc, TimeoutError):
                raise RunnerBusy(
                    "no thread became free before the deadline; the guest did not run",
                    reason="queued_past_deadline",
                ) from None
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and not task.cancelling():
                raise RunnerBusy("the caller left while queued", reason="abandoned") from None
            raise

    def release(self, tenant: str) -> None:
        t = self._tenants[tenant]
        t.running -= 1
        self.running -= 1
        self._leave(tenant, t)
        self._dispatch()

    def _start(self, t: _Tenant) -> None:
        t.running += 1
        self.running += 1

    def _leave(self, tenant: str, t: _Tenant) -> None:
        t.admitted -= 1
        self.admitted -= 1
        if t.admitted == 0:
            del self._tenants[tenant]

    def _dispatch(self) -> None:
        skipped = 0
        while self.running < self.threads and self._turns and skipped < len(self._turns):
            name = self._turns.popleft()
            t = self._tenants.get(name)
            while t is not None and t.waiting and t.waiting[0].done():
                t.waiting.popleft()  # its waiter gave up a moment ago and is leaving
            if t is None or not t.waiting:
                continue
            if t.running >= self.tenant_running:
                self._turns.append(name)
                skipped += 1
                continue
            self._start(t)
            t.waiting.popleft().set_result(None)
            if t.waiting:
                self._turns.append(name)
            skipped = 0
