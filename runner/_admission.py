"""Admission of executions: at most `threads` run, at most `queue_depth` wait for a thread, and one
tenant holds at most its share (`tenant_share`) of the threads and of all admitted slots.

    enter(tenant) -> place | None   refused at once (RunnerBusy) when every slot is taken or the tenant
                                    already holds its share of them; None: start now; else queued:
    await wait(tenant, place, dl)   returns once a thread is free for it; RunnerBusy if the deadline
                                    passes first, or if `place` was cancelled (the caller left)
    wait_blocking(tenant, place, dl, left)
                                    the same for a caller on its own thread (runner._frames): it
                                    blocks, and asks `left()` every `poll_s` whether its caller went
    release(tenant)                 the execution's thread is free again: hand it to the next waiter

The threads share is a hard cap: a guest that runs cannot be preempted, so a tenant allowed to take
every idle thread would leave another tenant's call waiting for a whole timeout. Waiters are served
round robin across tenants (FIFO within a tenant), skipping a tenant already running its share, so one
tenant's backlog never sits in front of another's call.

Both hops share one Admission: HTTP calls enter from the event loop, framed calls from their
connection threads, so the counts are kept under a lock. A place is granted under that lock (its
state says so) and its waiter is woken afterwards, on its own loop or thread; a waiter that gives up
decides under the lock whether it still waits (it leaves) or was granted meanwhile (it hands the
thread on), so no grant is lost whichever comes first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from runner.errors import RunnerBusy

_WAITING, _GRANTED, _GONE = 0, 1, 2


class Place:
    """One queued execution's turn: awaited on the event loop that queued it, or waited for on the
    thread that queued it (`blocking`)."""

    __slots__ = ("_event", "_future", "_loop", "_loop_thread", "state")

    def __init__(self, *, blocking: bool) -> None:
        self.state = _WAITING
        self._event: threading.Event | None = None
        self._future: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        if blocking:
            self._event = threading.Event()
        else:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._future = self._loop.create_future()

    def cancel(self) -> None:
        """The caller left (its connection closed): `wait` raises RunnerBusy(abandoned)."""
        if self._future is not None:
            self._future.cancel()

    def __await__(self) -> Generator[Any, None, None]:
        assert self._future is not None, "a blocking place is waited for with wait_blocking"
        return self._future.__await__()

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()
        elif self._loop is not None:
            if threading.get_ident() == self._loop_thread:
                _resolve(self._future)
            else:
                try:
                    self._loop.call_soon_threadsafe(_resolve, self._future)
                except RuntimeError:
                    pass  # its loop has closed (the runner is stopping): nobody waits any more


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


@dataclass
class _Tenant:
    admitted: int = 0
    running: int = 0
    waiting: deque[Place] = field(default_factory=deque)


class Admission:
    def __init__(self, *, threads: int, queue_depth: int, tenant_share: float, poll_s: float = 0.05) -> None:
        self.threads = threads
        self.capacity = threads + queue_depth
        self.tenant_admitted = max(1, int(tenant_share * self.capacity))
        self.tenant_running = max(1, int(tenant_share * threads))
        self.admitted = 0
        self.running = 0
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = {}
        self._turns: deque[str] = deque()  # tenants with waiters, in the order they are served
        self._granted: deque[Place] = deque()  # granted under the lock, not woken yet

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    def enter(self, tenant: str, *, blocking: bool = False) -> Place | None:
        """Admit one execution of `tenant`: None when it may start now, else its place in the queue
        (pass it to `wait`, or to `wait_blocking` when `blocking`; cancelling it gives the place up).

        Raises RunnerBusy when every slot is taken or the tenant already holds its share."""
        with self._lock:
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
            place = Place(blocking=blocking)
            t.waiting.append(place)
            if tenant not in self._turns:
                self._turns.append(tenant)
            return place

    async def wait(self, tenant: str, place: Place, deadline: float) -> None:
        """Wait until the queued execution is given a thread (`deadline`: a time.monotonic() value).

        Raises RunnerBusy when the deadline passes first (reason queued_past_deadline) or when
        `place` was cancelled, i.e. the caller left (reason abandoned)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await place
        except BaseException as exc:
            self._give_up(tenant, place)
            if isinstance(exc, TimeoutError):
                raise _past_deadline() from None
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and not task.cancelling():
                raise RunnerBusy("the caller left while queued", reason="abandoned") from None
            raise

    def wait_blocking(self, tenant: str, place: Place, deadline: float, left: Callable[[], bool]) -> None:
        """`wait` for a caller on its own thread; `left()` says whether the caller went away."""
        assert place._event is not None, "an event-loop place is awaited with wait"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                error = _past_deadline()
                break
            if place._event.wait(min(remaining, self._poll_s)):
                return
            if left():
                error = RunnerBusy("the caller left while queued", reason="abandoned")
                break
        self._give_up(tenant, place)
        raise error

    def release(self, tenant: str) -> None:
        with self._lock:
            self._release(tenant)
        self._wake_granted()

    def _give_up(self, tenant: str, place: Place) -> None:
        with self._lock:
            if place.state == _GRANTED:
                self._release(tenant)  # granted in the same instant: hand the thread on
            else:
                place.state = _GONE
                t = self._tenants[tenant]
                if place in t.waiting:
                    t.waiting.remove(place)
                self._leave(tenant, t)
        place.cancel()
        self._wake_granted()

    def _release(self, tenant: str) -> None:
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
        """Grant free threads to waiters (under the lock); they are woken by `_wake_granted`."""
        skipped = 0
        while self.running < self.threads and self._turns and skipped < len(self._turns):
            name = self._turns.popleft()
            t = self._tenants.get(name)
            if t is None or not t.waiting:
                continue
            if t.running >= self.tenant_running:
                self._turns.append(name)
                skipped += 1
                continue
            self._start(t)
            place = t.waiting.popleft()
            place.state = _GRANTED
            self._granted.append(place)
            if t.waiting:
                self._turns.append(name)
            skipped = 0

    def _wake_granted(self) -> None:
        # Woken outside the lock: waking an event-loop waiter from another thread writes to its loop.
        while self._granted:
            try:
                place = self._granted.popleft()
            except IndexError:
                return  # another releaser woke it
            place._wake()


def _past_deadline() -> RunnerBusy:
    return RunnerBusy(
        "no thread became free before the deadline; the guest did not run", reason="queued_past_deadline"
    )
