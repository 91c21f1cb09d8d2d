"""RolloutWorkflow end to end: waves through the install entities, soak, execution_log check,
automatic rollback on a regression, pause/resume and abort."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bundles.blobstore import FilesystemBlobStore
from schema.payloads.rollout import RolloutControl, RolloutPhase, RolloutStatus
from schema.temporal import (
    ROLLOUT_ABORT_UPDATE,
    ROLLOUT_PAUSE_UPDATE,
    ROLLOUT_RESUME_UPDATE,
    install_change_workflow_id,
)
from tests.workflows.helpers import Signer
from tests.workflows.rollout_helpers import (
    NEW,
    OLD,
    Fleet,
    build_fleet,
    final,
    in_phase,
    log_calls,
    start_rollout,
    status,
    versions,
    wait_for,
)
from workflows.rollout import ROLLOUT_STATE

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(120)]
Phase = RolloutPhase


@pytest.fixture
async def fleet(
    client: Client,
    task_queue: str,
    worker: None,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    f = await build_fleet(client, task_queue, store, signer, tmp_path, 5)
    yield f
    await f.close()


async def test_rollout_upgrades_every_install_in_waves(
    client: Client, fleet: Fleet, db_pool: asyncpg.Pool
) -> None:
    # A tenant left out of --tenants keeps its version.
    chosen = fleet.tenants[:4]
    await log_calls(db_pool, fleet.name, OLD, tenants=chosen, calls=20, ago_seconds=0.2)
    handle = await start_rollout(fleet, waves=["1", "50%"], soak_seconds=0.5, tenants=chosen)
    done = await final(handle)
    assert done.state is Phase.COMPLETED, done.reason
    assert (done.installs_total, done.waves_total, done.wave) == (4, 3, 3)
    assert [w.installs for w in done.waves] == [1, 1, 2]
    assert (done.upgraded, done.rolled_back, done.failed) == (4, 0, 0)
    assert all(not w.regression for w in done.waves)
    at = await versions(db_pool, fleet.name)
    assert {t: at[t] for t in chosen} == dict.fromkeys(chosen, NEW)
    assert at[fleet.tenants[4]] == OLD
    # Every upgrade ran as the entity's change under the deterministic request id of its wave.
    rollout_id = handle.id.removeprefix("rollout/")
    first = sorted(chosen)[0]
    change = client.get_workflow_handle(
        install_change_workflow_id(first, fleet.name, f"rollout-{rollout_id}-0-upgrade")
    )
    assert (await change.describe()).status is not None
    desc = await client.get_workflow_handle(handle.id).describe()
    assert desc.typed_search_attributes.get(ROLLOUT_STATE) == "completed"
    # One run per wave: continue-as-new after the first two.
    assert desc.run_id != handle.result_run_id
    assert desc.run_id != handle.first_execution_run_id


async def test_regression_halts_and_rolls_back(client: Client, fleet: Fleet, db_pool: asyncpg.Pool) -> None:
    await log_calls(db_pool, fleet.name, OLD, calls=50, ago_seconds=1.0)
    handle = await start_rollout(fleet, waves=["1", "60%"], soak_seconds=6.0)
    await wait_for(handle, in_phase(Phase.SOAKING, wave=0), what="first wave soaking")
    # The new version fails every call of the wave's one install (as a trapping handler would).
    assert await log_calls(db_pool, fleet.name, NEW, calls=20, outcome="handler_error") == 20
    done = await final(handle)
    assert done.state is Phase.ROLLED_BACK
    assert "error rate 100.00%" in done.reason
    assert done.waves[0].metrics is not None and done.waves[0].metrics.new_errors == 20
    assert done.waves[0].metrics.old_calls == 50
    assert (done.upgraded, done.rolled_back, done.wave) == (0, 1, 1)
    assert set((await versions(db_pool, fleet.name)).values()) == {OLD}
    desc = await client.get_workflow_handle(handle.id).describe()
    assert desc.typed_search_attributes.get(ROLLOUT_STATE) == "rolled_back"


async def test_slow_new_version_is_a_regression(client: Client, fleet: Fleet, db_pool: asyncpg.Pool) -> None:
    await log_calls(db_pool, fleet.name, OLD, calls=30, duration_ms=10.0, ago_seconds=1.0)
    handle = await start_rollout(fleet, waves=["2"], soak_seconds=6.0)
    await wait_for(handle, in_phase(Phase.SOAKING, wave=0), what="first wave soaking")
    await log_calls(db_pool, fleet.name, NEW, calls=30, duration_ms=40.0)
    done = await final(handle)
    assert done.state is Phase.ROLLED_BACK
    assert done.reason.startswith("wave 1: p99 40.0 ms")
    assert set((await versions(db_pool, fleet.name)).values()) == {OLD}


async def test_pause_holds_between_waves_until_resumed(
    client: Client, fleet: Fleet, db_pool: asyncpg.Pool
) -> None:
    handle = await start_rollout(fleet, waves=["1", "3"], soak_seconds=0.3)
    live = client.get_workflow_handle(handle.id)
    await live.execute_update(ROLLOUT_PAUSE_UPDATE, RolloutControl(actor="op"), result_type=RolloutStatus)
    held = await wait_for(handle, in_phase(Phase.PAUSED), what="paused")
    assert held.paused
    # Several soak periods later nothing moved.
    await asyncio.sleep(1.5)
    again = await status(handle)
    assert (again.state, again.wave, again.upgraded) == (Phase.PAUSED, held.wave, held.upgraded)
    desc = await live.describe()
    assert desc.typed_search_attributes.get(ROLLOUT_STATE) == "paused"
    await live.execute_update(ROLLOUT_RESUME_UPDATE, RolloutControl(actor="op"), result_type=RolloutStatus)
    done = await final(handle)
    assert done.state is Phase.COMPLETED and done.upgraded == 5
    assert set((await versions(db_pool, fleet.name)).values()) == {NEW}


async def test_abort_mid_soak_rolls_back_and_settles(
    client: Client, fleet: Fleet, db_pool: asyncpg.Pool
) -> None:
    handle = await start_rollout(fleet, waves=["2", "4"], soak_seconds=60.0)
    await wait_for(handle, in_phase(Phase.SOAKING, wave=0), what="first wave soaking")
    live = client.get_workflow_handle(handle.id)
    await live.execute_update(
        ROLLOUT_ABORT_UPDATE, RolloutControl(actor="op", reason="change freeze"), result_type=RolloutStatus
    )
    done = await final(handle)
    assert done.state is Phase.ABORTED
    assert done.reason == "aborted by op: change freeze"
    assert (done.upgraded, done.rolled_back) == (0, 2)
    assert set((await versions(db_pool, fleet.name)).values()) == {OLD}
    # A settled rollout takes no further control (the operator API answers 409 conflict).
    with pytest.raises(RPCError) as info:
        await live.execute_update(
            ROLLOUT_RESUME_UPDATE, RolloutControl(actor="op"), result_type=RolloutStatus
        )
    assert info.value.status is RPCStatusCode.NOT_FOUND


async def test_abort_without_rollback_keeps_upgraded_installs(
    client: Client, fleet: Fleet, db_pool: asyncpg.Pool
) -> None:
    handle = await start_rollout(fleet, waves=["2"], soak_seconds=60.0)
    await wait_for(handle, in_phase(Phase.SOAKING, wave=0), what="first wave soaking")
    await client.get_workflow_handle(handle.id).execute_update(
        ROLLOUT_ABORT_UPDATE, RolloutControl(actor="op", rollback=False), result_type=RolloutStatus
    )
    done = await final(handle)
    assert (done.state, done.upgraded, done.rolled_back) == (Phase.ABORTED, 2, 0)
    assert sorted((await versions(db_pool, fleet.name)).values()) == [OLD, OLD, OLD, NEW, NEW]
