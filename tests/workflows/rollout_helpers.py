"""Builders of the rollout tests (and bench/rollout.py): a fleet of installs of one extension in many
tenants, rollouts started and polled, and execution_log rows as the gateway would write them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle

from bundles.blobstore import BlobStore
from schema.payloads.install import InstallOperation as Op
from schema.payloads.rollout import RolloutInput, RolloutPhase, RolloutStatus, RolloutThresholds
from schema.temporal import ROLLOUT_STATUS_QUERY, WorkflowType, rollout_workflow_id
from tests.workflows.helpers import Installs, Signer, eventually, manifest, publish_version, unique_name

OLD, NEW = "1.0.0", "2.0.0"


@dataclass
class Fleet:
    """Installs of `name` at OLD in one tenant each; NEW is published too."""

    client: Client
    task_queue: str
    name: str
    installs: list[Installs] = field(default_factory=list)

    @property
    def tenants(self) -> list[str]:
        return [i.tenant for i in self.installs]

    async def close(self) -> None:
        for inst in self.installs:
            await inst.close()


async def build_fleet(
    client: Client,
    task_queue: str,
    store: BlobStore,
    signer: Signer,
    tmp: Path,
    size: int,
    *,
    parallel: int = 16,
) -> Fleet:
    name = unique_name()
    for v in (OLD, NEW):
        await publish_version(client, task_queue, store, signer, tmp, manifest(name, v))
    prefix = uuid.uuid4().hex[:8]
    fleet = Fleet(client=client, task_queue=task_queue, name=name)
    fleet.installs = [
        Installs(client=client, task_queue=task_queue, tenant=f"t-{prefix}-{i:04d}") for i in range(size)
    ]
    gate = asyncio.Semaphore(parallel)

    async def one(inst: Installs) -> None:
        async with gate:
            await inst.apply(name, Op.INSTALL, version=OLD, config={})

    await asyncio.gather(*(one(i) for i in fleet.installs))
    return fleet


async def start_rollout(
    fleet: Fleet,
    *,
    waves: list[str],
    soak_seconds: float,
    thresholds: RolloutThresholds | None = None,
    tenants: list[str] | None = None,
) -> WorkflowHandle[Any, RolloutStatus]:
    rollout_id = uuid.uuid4().hex[:12]
    return await fleet.client.start_workflow(
        WorkflowType.ROLLOUT,
        RolloutInput(
            rollout_id=rollout_id,
            extension=fleet.name,
            version=NEW,
            tenants=tenants if tenants is not None else fleet.tenants,
            waves=waves,
            soak_seconds=soak_seconds,
            thresholds=thresholds or RolloutThresholds(),
            actor="tester",
        ),
        id=rollout_workflow_id(rollout_id),
        task_queue=fleet.task_queue,
        result_type=RolloutStatus,
    )


async def status(handle: WorkflowHandle[Any, Any]) -> RolloutStatus:
    # The handle follows continue-as-new runs when it has no run id (get_workflow_handle(id)).
    current = handle._client.get_workflow_handle(handle.id)
    result: RolloutStatus = await current.query(ROLLOUT_STATUS_QUERY, result_type=RolloutStatus)
    return result


async def wait_for(
    handle: WorkflowHandle[Any, Any],
    ok: Callable[[RolloutStatus], bool],
    *,
    timeout: float = 60.0,
    what: str = "",
) -> RolloutStatus:
    async def check() -> RolloutStatus | None:
        s = await status(handle)
        return s if ok(s) else None

    return await eventually(check, timeout=timeout, what=what or "rollout status")


def in_phase(phase: RolloutPhase, *, wave: int | None = None) -> Callable[[RolloutStatus], bool]:
    return lambda s: s.state is phase and (wave is None or s.wave == wave)


async def final(handle: WorkflowHandle[Any, Any]) -> RolloutStatus:
    current = handle._client.get_workflow_handle(handle.id, result_type=RolloutStatus)
    result: RolloutStatus = await current.result()
    return result


async def versions(pool: asyncpg.Pool, name: str) -> dict[str, str]:
    """tenant -> version of every install of `name`."""
    rows = await pool.fetch(
        """SELECT i.tenant_id, v.version FROM installs i JOIN extensions e ON e.id = i.extension_id
           JOIN versions v ON v.id = i.version_id WHERE e.name = $1""",
        name,
    )
    return {r["tenant_id"]: r["version"] for r in rows}


async def log_calls(
    pool: asyncpg.Pool,
    name: str,
    version: str,
    *,
    tenants: list[str] | None = None,
    calls: int = 10,
    outcome: str = "ok",
    duration_ms: float = 5.0,
    ago_seconds: float = 0.0,
) -> int:
    """`calls` execution_log rows per install of `name` at `version` (in `tenants`), `ago_seconds` in
    the past; returns how many were written."""
    written: int = await pool.fetchval(
        """
        WITH ins AS (
            INSERT INTO execution_log (request_id, tenant_id, extension_name, version, install_id, method,
                                       endpoint, status, outcome, duration_ms, at)
            SELECT gen_random_uuid()::text, i.tenant_id, e.name, $2, i.id, 'GET', '/status',
                   CASE WHEN $4 = 'ok' THEN 200 ELSE 500 END, $4, $5,
                   now() - make_interval(secs => $6)
            FROM installs i JOIN extensions e ON e.id = i.extension_id
            JOIN versions v ON v.id = i.version_id
            CROSS JOIN generate_series(1, $3)
            WHERE e.name = $1 AND v.version = $2 AND ($7::text[] IS NULL OR i.tenant_id = ANY($7::text[]))
            RETURNING 1
        ) SELECT count(*) FROM ins
        """,
        name,
        version,
        calls,
        outcome,
        duration_ms,
        ago_seconds,
        tenants,
    )
    return written
