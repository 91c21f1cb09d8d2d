"""Fleet rollout at scale: N installs (default 200) in 3 waves (1%, 10%, 100%), with a regression
injected into the last wave, so the rollout halts and rolls every upgraded install back.

    python -m bench.rollout [--installs 200] [--soak 3]

It starts its own stack (Postgres, Redis, Temporal; EXT_DATABASE_URL / EXT_REDIS_URL /
EXT_TEMPORAL_ADDRESS when set) under a temporary root and one in-process worker on a fresh task
queue. The regression is what a trapping handler leaves in execution_log: once the last wave soaks,
every upgraded install gets failing calls on the new version. Reported: the set-up time (publish +
N installs), the rollout's time from start to `rolled_back`, the time per wave, installs touched
(upgrades + rollbacks, from install_history) and the final state and versions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bundles.blobstore import FilesystemBlobStore
from cli.devstack.stack import Stack
from core.codec import data_converter
from core.db import create_pool
from core.temporal import connect_temporal
from schema.payloads.rollout import RolloutPhase
from schema.temporal import compile_task_queue_for
from tests.workflows.helpers import Signer, fixed_keyring
from tests.workflows.rollout_helpers import (
    NEW,
    OLD,
    build_fleet,
    final,
    in_phase,
    log_calls,
    start_rollout,
    versions,
    wait_for,
)
from workflows.worker import build_workers, running_workers

WAVES = ["1%", "10%", "100%"]


def run(installs: int, soak: float, root: Path) -> dict[str, Any]:
    # Stack.up/down run their own event loops: outside the measurement's.
    stack = Stack(root / ".extplane", with_apps=False, auto_ports=True)
    info = stack.up()
    try:
        return asyncio.run(_measure(info.env, installs, soak, root))
    finally:
        stack.down()


async def _measure(env: dict[str, str], size: int, soak: float, root: Path) -> dict[str, Any]:
    keyring = fixed_keyring(1)
    client = await connect_temporal(env["EXT_TEMPORAL_ADDRESS"], data_converter=data_converter(keyring))
    pool = await create_pool(env["EXT_DATABASE_URL"], min_size=2, max_size=20)
    redis = aioredis.Redis.from_url(env["EXT_REDIS_URL"])
    store = FilesystemBlobStore(root / "blobs")
    queue = f"bench-rollout-{uuid.uuid4().hex[:8]}"
    executor = ThreadPoolExecutor(max_workers=2)
    workers = build_workers(
        client,
        control_task_queue=queue,
        compile_task_queue=compile_task_queue_for(queue),
        queues=("control", "compile"),
        pool=pool,
        store=store,
        redis=redis,
        keyring=keyring,
        compile_executor=executor,
        max_concurrent_activities=100,
    )
    try:
        async with running_workers(workers):
            signer = Signer("acme")
            await signer.trust(pool)
            t0 = time.perf_counter()
            fleet = await build_fleet(client, queue, store, signer, root, size, parallel=32)
            setup_s = time.perf_counter() - t0
            await log_calls(pool, fleet.name, OLD, calls=20, ago_seconds=1.0)
            t1 = time.perf_counter()
            handle = await start_rollout(fleet, waves=WAVES, soak_seconds=soak)
            marks: list[float] = []
            for wave in range(len(WAVES)):
                await wait_for(handle, in_phase(RolloutPhase.SOAKING, wave=wave), timeout=600)
                marks.append(time.perf_counter() - t1)
            injected = await log_calls(pool, fleet.name, NEW, calls=10, outcome="handler_error")
            done = await final(handle)
            rollout_s = time.perf_counter() - t1
            at = await versions(pool, fleet.name)
            touched = await pool.fetch(
                """SELECT h.operation, count(*) AS n FROM install_history h
                   JOIN installs i ON i.id = h.install_id JOIN extensions e ON e.id = i.extension_id
                   WHERE e.name = $1 AND h.operation IN ('upgrade', 'rollback') GROUP BY h.operation""",
                fleet.name,
            )
            await fleet.close()
    finally:
        executor.shutdown(wait=False)
        await redis.aclose()
        await pool.close()
    return {
        "installs": size,
        "waves": WAVES,
        "soak_seconds": soak,
        "setup_seconds": round(setup_s, 2),
        "rollout_seconds": round(rollout_s, 2),
        "wave_upgraded_by_seconds": [round(m, 2) for m in marks],
        "rollout_overhead_seconds": round(rollout_s - soak * len(WAVES), 2),
        "injected_failing_calls": injected,
        "final_state": done.state.value,
        "reason": done.reason,
        "waves_total": done.waves_total,
        "installs_total": done.installs_total,
        "wave_sizes": [w.installs for w in done.waves],
        "rolled_back": done.rolled_back,
        "history_rows": {r["operation"]: r["n"] for r in touched},
        "versions_after": sorted(set(at.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rollout", description=__doc__)
    parser.add_argument("--installs", type=int, default=200)
    parser.add_argument("--soak", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        result = run(args.installs, args.soak, Path(tmp))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
