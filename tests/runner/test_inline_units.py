"""runner._inline: which co-located calls may run on the event loop's thread."""

from __future__ import annotations

import time

import pytest

from runner._inline import InlinePolicy
from schema.capabilities import Capability
from schema.envelope import ExecuteRequest
from tests.runner.runner_helpers import envelope

HASH = "sha256:" + "c" * 64


def call(install: str = "i-1", granted: list[str] | None = None) -> ExecuteRequest:
    doc = envelope(HASH, "/x", install_id=install, granted=granted, artifacts={})
    return ExecuteRequest.model_validate(doc)


def warmed(policy: InlinePolicy, req: ExecuteRequest, calls: int = 3) -> None:
    for _ in range(calls):
        policy.observe(req, cpu_s=0.0001, wall_s=0.0002, inline=False)


def test_only_after_the_warmup_calls_all_fast() -> None:
    policy = InlinePolicy(budget_s=0.002, warmup=3)
    req = call()
    assert not policy.allows(req)  # never seen: the pool runs it first
    warmed(policy, req, calls=2)
    assert not policy.allows(req)
    policy.observe(req, cpu_s=0.0001, wall_s=0.0001, inline=False)
    assert policy.allows(req)
    assert not policy.allows(call(install="i-2"))  # another install of the same component: its own


def test_a_slow_call_sends_the_install_back_to_the_pool_for_the_cool_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = InlinePolicy(budget_s=0.002, warmup=3, cool_down_s=60.0)
    req = call()
    warmed(policy, req)
    assert policy.allows(req)
    policy.observe(req, cpu_s=0.5, wall_s=0.5, inline=False)  # over the budget
    assert not policy.allows(req)
    warmed(policy, req)  # fast again, but within the cool-down
    assert not policy.allows(req)
    now = time.monotonic()
    monkeypatch.setattr("runner._inline.time.monotonic", lambda: now + 61.0)
    assert policy.allows(req)


@pytest.mark.parametrize("capability", [Capability.STORAGE_KV, Capability.HTTP_FETCH])
def test_never_a_call_that_waits_on_io(capability: Capability) -> None:
    policy = InlinePolicy(budget_s=0.002, warmup=1)
    req = call(granted=[Capability.LOG_EMIT.value, capability.value])
    warmed(policy, req)
    assert not policy.allows(req)
    plain = call(install="i-3", granted=[Capability.LOG_EMIT.value, Capability.SECRETS_GET.value])
    warmed(policy, plain)
    assert policy.allows(plain)


def test_a_zero_budget_turns_it_off_and_the_records_are_bounded() -> None:
    off = InlinePolicy(budget_s=0.0, warmup=1)
    req = call()
    warmed(off, req)
    assert not off.allows(req)
    small = InlinePolicy(budget_s=0.002, warmup=1, max_entries=2)
    first, second, third = call("a"), call("b"), call("c")
    for req in (first, second, third):
        warmed(small, req, calls=1)
    assert not small.allows(first)  # the oldest record made room
    assert small.allows(second) and small.allows(third)


def test_pooled_calls_are_judged_by_cpu_but_a_long_wait_or_a_long_inline_call_counts() -> None:
    policy = InlinePolicy(budget_s=0.002, warmup=1)
    contended = call("contended")
    policy.observe(contended, cpu_s=0.0005, wall_s=0.03, inline=False)  # waited for the GIL: fine
    assert policy.allows(contended)
    sleeper = call("sleeper")
    policy.observe(sleeper, cpu_s=0.0001, wall_s=0.5, inline=False)  # blocked in a host call
    assert not policy.allows(sleeper)
    held = call("held")
    warmed(policy, held)
    policy.observe(held, cpu_s=0.0001, wall_s=0.015, inline=True)  # preempted: held the loop 15 ms
    assert policy.allows(held)
    policy.observe(held, cpu_s=0.0001, wall_s=0.05, inline=True)  # held it 50 ms: blocked
    assert not policy.allows(held)
