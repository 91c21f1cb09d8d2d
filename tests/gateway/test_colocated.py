"""Co-located mode (EXT_RUNNER_URL=local:): the guest runs in the gateway's process (runner.local).

The behaviours every hop must keep are test_proxy's own tests and test_execlog_caller's fuel and
principal records, collected here again against a co-located gateway (whose answers are Outcomes,
not JSON, api.gateway.colocated); below them is what only this mode has: its settings, abandoning
a guest whose caller stopped waiting, the runner's admission answering 503 in-process, the
runner's metrics on the gateway's /metrics, and `python -m api.gateway --reuse-port` processes
pinned with EXT_CPUS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import ApiSettings
from tests.gateway.conftest import (
    MASTER_KEYS,
    RUNNER_AUTH,
    Gateway,
    GatewayFactory,
    Registry,
    RunnerProcess,
    eventually,
    free_port,
    gateway_process,
    wait_http,
)
from tests.gateway.test_execlog_caller import (  # collected again: fuel from a co-located Outcome
    test_calls_that_ran_no_guest_have_no_fuel,
    test_guest_failures_record_the_fuel_they_burnt,
    test_tenant_and_operator_calls_record_principal_and_fuel,
)
from tests.gateway.test_policy import assert_error
from tests.gateway.test_proxy import (  # collected again, over the co-located hop
    test_guest_trap_is_bad_gateway,
    test_handler_status_passes_through,
    test_overlong_path_or_query_is_a_client_error,
    test_request_headers_are_filtered_and_set,
    test_response_headers_are_filtered,
    test_runner_deadline_is_handler_timeout,
    test_unknown_runner_bundle_is_bad_gateway,
)

pytestmark = pytest.mark.integration

__all__ = [
    "test_calls_that_ran_no_guest_have_no_fuel",
    "test_guest_failures_record_the_fuel_they_burnt",
    "test_tenant_and_operator_calls_record_principal_and_fuel",
    "test_guest_trap_is_bad_gateway",
    "test_handler_status_passes_through",
    "test_overlong_path_or_query_is_a_client_error",
    "test_request_headers_are_filtered_and_set",
    "test_response_headers_are_filtered",
    "test_runner_deadline_is_handler_timeout",
    "test_unknown_runner_bundle_is_bad_gateway",
]


def runner_env(db_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """What the co-located runner reads (RunnerSettings, EXT_*): the shared runner's settings."""
    return {
        "EXT_ENV": "test",
        "EXT_DATA_DIR": str(data_dir),
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_RUNNER_AUTH": RUNNER_AUTH,
        "EXT_MASTER_KEYS": MASTER_KEYS,
        "EXT_FUEL_PER_MS": "1000000000",
        "EXT_THREADS": "2",
        **extra,
    }


@pytest.fixture
def local_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, redis_url: str, runner_data_dir: Path
) -> Iterator[dict[str, str]]:
    env = runner_env(db_url, redis_url, runner_data_dir)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


@pytest.fixture
async def gateway(
    gateway_factory: GatewayFactory, shared_runner: RunnerProcess, local_env: dict[str, str]
) -> Gateway:
    # UI files still come from a runner's HTTP port (EXT_RUNNER_UI_URL): only calls are co-located.
    return await gateway_factory(runner_url="local:", runner_ui_url=shared_runner.url)


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def _metric(gw: Gateway, pattern: str) -> float:
    text = (await gw.client.get("/metrics")).text
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


ABANDONED = r'^extplane_runner_abandoned_total\{stage="running"\} (\S+)$'
IN_FLIGHT = r"^extplane_runner_in_flight (\S+)$"


def test_local_cannot_be_mixed_and_needs_a_ui_url() -> None:
    with pytest.raises(ValueError, match="cannot be mixed"):
        ApiSettings(
            env="test",
            runner_url="local:,http://127.0.0.1:9000",
            runner_ui_url="http://127.0.0.1:9000",
            runner_auth=RUNNER_AUTH,
        )
    with pytest.raises(ValueError, match="EXT_RUNNER_UI_URL"):
        ApiSettings(env="test", runner_url="local:", runner_auth=RUNNER_AUTH)
    settings = ApiSettings(
        env="test", runner_url=" local: ", runner_ui_url="http://127.0.0.1:9000", runner_auth=RUNNER_AUTH
    )
    assert settings.colocated
    assert not ApiSettings(env="test", runner_url="http://127.0.0.1:9000", runner_auth=RUNNER_AUTH).colocated


async def test_the_runner_metrics_are_on_the_gateway(gateway: Gateway, registry: Registry) -> None:
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
    assert resp.status_code == 200, resp.text
    text = (await gateway.client.get("/metrics")).text
    assert 'extplane_runner_executions_total{outcome="ok"} 1.0' in text
    assert "gateway_requests_total" in text


async def test_a_call_the_gateway_gave_up_on_is_abandoned_and_frees_its_slot(
    gateway_factory: GatewayFactory,
    registry: Registry,
    shared_runner: RunnerProcess,
    local_env: dict[str, str],
) -> None:
    """The gateway stops waiting after 300 ms; the guest (10 s allowed) is told to stop at its next
    deadline check, and its admission slot is released only once it has."""
    a = tenant()
    await registry.install(a, "com.acme.slow", timeout_ms=10_000)
    token = await registry.token(a, "ext:read")
    gw = await gateway_factory(runner_url="local:", runner_ui_url=shared_runner.url, gateway_timeout_ms=300)
    resp = await gw.call("GET", "/api/ext/com.acme.slow/loop", token)
    assert_error(resp, 504, "handler_timeout")

    async def ended() -> bool:
        return await _metric(gw, ABANDONED) == 1.0 and await _metric(gw, IN_FLIGHT) == 0.0

    assert await eventually(ended, deadline_s=8)


async def test_the_local_runner_sheds_beyond_its_threads_and_queue(
    gateway_factory: GatewayFactory,
    registry: Registry,
    shared_runner: RunnerProcess,
    local_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One thread, no queue: a second call while the first spins is refused by the runner's own
    admission, in-process, as 503 runner_busy (not queued in the gateway)."""
    monkeypatch.setenv("EXT_THREADS", "1")
    monkeypatch.setenv("EXT_QUEUE_DEPTH", "0")
    a = tenant()
    await registry.install(a, "com.acme.slow", timeout_ms=1_500)
    token = await registry.token(a, "ext:read")
    gw = await gateway_factory(runner_url="local:", runner_ui_url=shared_runner.url)
    first = asyncio.ensure_future(gw.call("GET", "/api/ext/com.acme.slow/loop", token))

    async def running() -> bool:
        return await _metric(gw, IN_FLIGHT) == 1.0

    assert await eventually(running, deadline_s=5)
    second = await gw.call("GET", "/api/ext/com.acme.slow/loop", token)
    assert_error(second, 503, "runner_busy")
    assert_error(await first, 504, "handler_timeout")


def _allowed_cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="EXT_CPUS needs Linux")
async def test_reuse_port_processes_share_a_port_each_pinned(
    db_url: str, redis_url: str, runner_data_dir: Path, registry: Registry, shared_runner: RunnerProcess
) -> None:
    """Two `python -m api.gateway --reuse-port` processes, co-located, pinned to CPU 0, on one port:
    both bind it (without SO_REUSEPORT the second would exit at start), and once the first stops the
    second alone answers on the same port."""
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    port = free_port()
    settings = {
        name.removeprefix("EXT_").lower(): value
        for name, value in runner_env(db_url, redis_url, runner_data_dir, EXT_CPUS="0").items()
        if name not in ("EXT_ENV", "EXT_DATABASE_URL", "EXT_REDIS_URL", "EXT_RUNNER_AUTH")
    }
    settings["runner_ui_url"] = shared_runner.url

    def start() -> contextlib.AbstractContextManager[str]:
        return gateway_process(
            db_url, redis_url, "local:", workers=1, port=port, args=("--reuse-port",), **settings
        )

    async def answered(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as client:
            for _ in range(4):
                resp = await client.get("/api/ext/com.acme.app/reflect/status")
                assert resp.status_code == 200, resp.text

    with contextlib.ExitStack() as first:
        url = await asyncio.to_thread(first.enter_context, start())
        with start() as second_url:
            assert second_url == url
            # Its health check may have been answered by the first: wait until it listens too.
            assert await eventually(lambda: _bound(port, 2), deadline_s=60)
            assert [_allowed_cpus(pid) for pid in _listeners(port)] == ["0", "0"]
            await answered(url)
            first.close()  # the first process stops; the port stays served
            await asyncio.to_thread(wait_http, url + "/healthz", deadline_s=30)
            assert len(_listeners(port)) == 1
            await answered(url)


async def _bound(port: int, processes: int) -> bool:
    return len(_listeners(port)) == processes


def _listeners(port: int) -> list[int]:
    """Pids of the processes with a listening socket on `port` (from /proc/net/tcp and fd links)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
            inodes.add(fields[9])
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            pids.append(int(proc.name))
    return sorted(pids)


INLINE = r"^extplane_runner_inline_calls_total (\S+)$"


async def test_fast_calls_run_inline_after_the_warmup_and_a_slow_one_goes_back_to_the_pool(
    gateway_factory: GatewayFactory,
    registry: Registry,
    shared_runner: RunnerProcess,
    local_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """runner._inline: 8 pooled calls under the budget, then on the loop's thread; a call that runs
    long there (its 1 s deadline ends it, 504) sends the install back to the guest threads. The
    budget is 50 ms here, so that busy CI cores cannot push a C echo call over it."""
    monkeypatch.setenv("EXT_LOCAL_INLINE_US", "50000")
    gateway = await gateway_factory(runner_url="local:", runner_ui_url=shared_runner.url)
    a = tenant()
    # 1 s: the spinning call holds the loop over 10 budgets (500 ms) however little CPU it gets.
    await registry.install(a, "com.acme.app", timeout_ms=1_000)
    token = await registry.token(a, "ext:read")

    async def status() -> None:
        resp = await gateway.call("GET", "/api/ext/com.acme.app/reflect/status", token)
        assert resp.status_code == 200, resp.text

    for _ in range(8):
        await status()
    assert await _metric(gateway, INLINE) == 0.0
    for _ in range(3):
        await status()
    assert await _metric(gateway, INLINE) == 3.0
    assert_error(await gateway.call("GET", "/api/ext/com.acme.app/loop", token), 504, "handler_timeout")
    assert await _metric(gateway, INLINE) == 4.0
    await status()
    assert await _metric(gateway, INLINE) == 4.0  # pooled again: the install ran long inline


async def test_a_zero_inline_budget_keeps_every_call_on_the_guest_threads(
    gateway_factory: GatewayFactory,
    registry: Registry,
    shared_runner: RunnerProcess,
    local_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXT_LOCAL_INLINE_US", "0")
    a = tenant()
    await registry.install(a, "com.acme.app")
    token = await registry.token(a, "ext:read")
    gw = await gateway_factory(runner_url="local:", runner_ui_url=shared_runner.url)
    for _ in range(12):
        resp = await gw.call("GET", "/api/ext/com.acme.app/reflect/status", token)
        assert resp.status_code == 200, resp.text
    assert await _metric(gw, INLINE) == 0.0
    assert 'extplane_runner_executions_total{outcome="ok"} 12.0' in (await gw.client.get("/metrics")).text
