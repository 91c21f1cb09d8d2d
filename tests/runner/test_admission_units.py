"""runner._admission alone (no services): caps, the round robin between tenants, and that no queued
execution is ever forgotten, whatever order releases, cancellations and deadlines come in."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from runner._admission import Admission, Place
from runner.errors import RunnerBusy

LATER = 60.0


def deadline(s: float = LATER) -> float:
    return time.monotonic() + s


async def test_shares_cap_threads_and_slots_per_tenant() -> None:
    adm = Admission(threads=4, queue_depth=4, tenant_share=0.5)
    assert (adm.tenant_running, adm.tenant_admitted) == (2, 4)
    assert adm.enter("a") is None and adm.enter("a") is None  # a runs on its 2 threads
    queued = [adm.enter("a"), adm.enter("a")]  # ... and waits for more, although 2 threads are idle
    assert all(q is not None for q in queued)
    with pytest.raises(RunnerBusy) as refused:
        adm.enter("a")
    assert refused.value.reason == "tenant_share"
    assert adm.enter("b") is None  # another tenant still starts at once
    assert (adm.running, adm.admitted, adm.waiting) == (3, 5, 2)


async def test_full_runner_refuses_everyone() -> None:
    adm = Admission(threads=1, queue_depth=1, tenant_share=1.0)
    assert adm.enter("a") is None
    assert adm.enter("b") is not None
    with pytest.raises(RunnerBusy) as refused:
        adm.enter("c")
    assert refused.value.reason == "full"


async def test_a_thread_freed_before_the_waiter_awaits_is_not_lost() -> None:
    adm = Admission(threads=1, queue_depth=2, tenant_share=1.0)
    assert adm.enter("a") is None
    place = adm.enter("b")
    assert place is not None
    adm.release("a")  # before b's handler got to `wait`
    await asyncio.wait_for(adm.wait("b", place, deadline()), 5)
    assert (adm.running, adm.admitted) == (1, 1)
    adm.release("b")
    assert (adm.running, adm.admitted) == (0, 0)


async def test_waiters_are_served_round_robin_across_tenants() -> None:
    adm = Admission(threads=1, queue_depth=8, tenant_share=1.0)
    assert adm.enter("a") is None
    places = [(t, adm.enter(t)) for t in ("a", "a", "a", "b", "c")]
    order: list[str] = []

    async def waiter(tenant: str, place: Place | None) -> None:
        assert place is not None
        await adm.wait(tenant, place, deadline())
        order.append(tenant)
        await asyncio.sleep(0)
        adm.release(tenant)

    tasks = [asyncio.create_task(waiter(t, p)) for t, p in places]
    await asyncio.sleep(0)
    adm.release("a")
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    # a's backlog does not sit in front of b and c.
    assert order == ["a", "b", "c", "a", "a"]
    assert (adm.running, adm.admitted) == (0, 0)


async def test_a_waiter_past_its_deadline_or_cancelled_leaves() -> None:
    adm = Admission(threads=1, queue_depth=4, tenant_share=1.0)
    assert adm.enter("a") is None
    late, gone, next_ = adm.enter("b"), adm.enter("c"), adm.enter("d")
    assert late is not None and gone is not None and next_ is not None
    with pytest.raises(RunnerBusy) as expired:
        await adm.wait("b", late, time.monotonic() + 0.01)
    assert expired.value.reason == "queued_past_deadline"
    waiting = asyncio.create_task(adm.wait("c", gone, deadline()))
    await asyncio.sleep(0)
    gone.cancel()  # the caller's connection closed
    with pytest.raises(RunnerBusy) as left:
        await waiting
    assert left.value.reason == "abandoned"
    assert (adm.admitted, adm.waiting) == (2, 1)
    adm.release("a")  # goes to d, the only one still waiting
    await asyncio.wait_for(adm.wait("d", next_, deadline()), 5)
    adm.release("d")
    assert (adm.running, adm.admitted, adm.waiting) == (0, 0, 0)


# Framed calls (runner._frames) wait on their own threads; HTTP calls on the event loop. Both share
# one Admission, so grants cross from one to the other.


async def test_a_thread_waiter_is_granted_by_a_release_on_the_loop() -> None:
    adm = Admission(threads=1, queue_depth=2, tenant_share=1.0)
    assert adm.enter("a") is None
    place = adm.enter("b", blocking=True)
    assert place is not None
    waiting = asyncio.create_task(asyncio.to_thread(adm.wait_blocking, "b", place, deadline(), lambda: False))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    adm.release("a")
    await asyncio.wait_for(waiting, 5)
    assert (adm.running, adm.admitted) == (1, 1)
    adm.release("b")
    assert (adm.running, adm.admitted) == (0, 0)


async def test_a_loop_waiter_is_granted_by_a_release_on_another_thread() -> None:
    adm = Admission(threads=1, queue_depth=2, tenant_share=1.0)
    assert adm.enter("a", blocking=True) is None
    place = adm.enter("b")
    assert place is not None
    waiting = asyncio.create_task(adm.wait("b", place, deadline()))
    await asyncio.sleep(0)
    await asyncio.to_thread(adm.release, "a")
    await asyncio.wait_for(waiting, 5)
    adm.release("b")
    assert (adm.running, adm.admitted, adm.waiting) == (0, 0, 0)


def test_a_thread_waiter_whose_caller_left_or_whose_deadline_passed_leaves() -> None:
    adm = Admission(threads=1, queue_depth=4, tenant_share=1.0, poll_s=0.01)
    assert adm.enter("a", blocking=True) is None
    gone, late, next_ = (adm.enter(t, blocking=True) for t in "bcd")
    assert gone is not None and late is not None and next_ is not None
    asked: list[int] = []

    def left() -> bool:
        asked.append(1)
        return len(asked) >= 3  # the caller's socket turns readable on the third look

    with pytest.raises(RunnerBusy) as abandoned:
        adm.wait_blocking("b", gone, deadline(), left)
    assert abandoned.value.reason == "abandoned" and len(asked) == 3
    with pytest.raises(RunnerBusy) as expired:
        adm.wait_blocking("c", late, time.monotonic() + 0.02, lambda: False)
    assert expired.value.reason == "queued_past_deadline"
    assert (adm.admitted, adm.waiting) == (2, 1)
    adm.release("a")  # goes to d, the only one still waiting
    adm.wait_blocking("d", next_, deadline(), lambda: False)
    adm.release("d")
    assert (adm.running, adm.admitted, adm.waiting) == (0, 0, 0)


async def test_threads_and_the_loop_together_never_lose_or_exceed_a_thread() -> None:
    """Threads (framed calls) and tasks (HTTP calls) enter, wait, give up and release at random; at
    no point do more than `threads` run, and at the end every slot is free again."""
    adm = Admission(threads=3, queue_depth=400, tenant_share=1.0, poll_s=0.001)
    lock = threading.Lock()
    running = [0, 0]  # now, the most ever seen

    def count(by: int) -> None:
        with lock:
            running[0] += by
            running[1] = max(running[1], running[0])

    def hold(rng: random.Random) -> None:
        count(1)
        time.sleep(rng.random() / 2000)
        count(-1)

    def one_blocking(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            tenant = rng.choice("abc")
            place = adm.enter(tenant, blocking=True)
            if place is not None:
                try:
                    adm.wait_blocking(tenant, place, time.monotonic() + rng.random() / 100, lambda: False)
                except RunnerBusy:
                    continue
            hold(rng)
            adm.release(tenant)

    async def one_async(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            tenant = rng.choice("abc")
            place = adm.enter(tenant)
            if place is not None:
                try:
                    await adm.wait(tenant, place, time.monotonic() + rng.random() / 100)
                except RunnerBusy:
                    continue
            count(1)
            await asyncio.sleep(rng.random() / 2000)
            count(-1)
            adm.release(tenant)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(6) as threads:
        await asyncio.wait_for(
            asyncio.gather(
                *(loop.run_in_executor(threads, one_blocking, s) for s in range(6)),
                *(one_async(100 + s) for s in range(6)),
            ),
            60,
        )
    assert running[1] <= 3
    assert (adm.running, adm.admitted, adm.waiting) == (0, 0, 0)
