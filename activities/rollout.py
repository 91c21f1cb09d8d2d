"""Activities of RolloutWorkflow: select the installs, move a wave through the install entities, and
measure a wave from execution_log.

A wave's upgrades and rollbacks are Updates of each install's entity workflow (update-with-start, as
the operator API sends them), never registry writes of their own: the entity serializes them with any
other change of the install and runs each as an audited InstallChange child. Request ids are
deterministic (`rollout-<id>-<wave>-<op>`), so a retried activity re-sends the same ids and the entity
answers each with its first result.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities._errors import activity_errors
from registry import read_rollout
from schema.errors import ErrorCode
from schema.payloads.install import InstallChangeResult, InstallInput, InstallOperation, InstallRequest
from schema.payloads.rollout import (
    ApplyWaveInput,
    ApplyWaveResult,
    InstallOutcome,
    MeasureWaveInput,
    RolloutTarget,
    SelectTargetsInput,
    SelectTargetsResult,
    WaveMetrics,
    WaveTarget,
    rollout_request_id,
)
from schema.temporal import INSTALL_APPLY_UPDATE, WorkflowType, install_workflow_id

log = structlog.get_logger(__name__)

# Changes in flight at once per wave: the entities run in parallel, the worker's activity slots do not
# need to cover a whole wave.
CONCURRENCY = 32
# A change the entity refuses for one of these reasons leaves nothing to undo: the install is gone.
_GONE = frozenset({ErrorCode.NOT_FOUND.value})


class RolloutActivities:
    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self.pool = pool
        self.client = client

    @activity.defn(name="select_rollout_targets")
    async def select_targets(self, inp: SelectTargetsInput) -> SelectTargetsResult:
        with activity_errors():
            found = await read_rollout.rollout_candidates(self.pool, inp.extension, inp.version, inp.tenants)
        return SelectTargetsResult(
            targets=[
                RolloutTarget(tenant_id=c.tenant_id, install_id=c.install_id, from_version=c.version)
                for c in found
            ]
        )

    @activity.defn(name="apply_rollout_wave")
    async def apply_wave(self, inp: ApplyWaveInput) -> ApplyWaveResult:
        at = datetime.now(UTC).isoformat()
        gate = asyncio.Semaphore(CONCURRENCY)
        queue = activity.info().task_queue

        async def one(item: WaveTarget) -> InstallOutcome:
            async with gate:
                outcome = await self._send(inp, item, queue)
                activity.heartbeat()
                return outcome

        outcomes = await asyncio.gather(*(one(t) for t in inp.targets))
        return ApplyWaveResult(outcomes=list(outcomes), at=at)

    async def _send(self, inp: ApplyWaveInput, item: WaveTarget, task_queue: str) -> InstallOutcome:
        t = item.target
        upgrade = inp.operation == InstallOperation.UPGRADE.value
        request = InstallRequest(
            request_id=rollout_request_id(inp.rollout_id, item.wave, inp.operation),
            operation=InstallOperation.UPGRADE if upgrade else InstallOperation.ROLLBACK,
            actor=inp.actor,
            version=inp.version if upgrade else t.from_version,
        )
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WorkflowType.INSTALL.value,
            InstallInput(tenant_id=t.tenant_id, extension=inp.extension),
            id=install_workflow_id(t.tenant_id, inp.extension),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        done = "upgraded" if upgrade else "rolled_back"
        try:
            result: InstallChangeResult = await self.client.execute_update_with_start_workflow(
                INSTALL_APPLY_UPDATE, request, start_workflow_operation=start, result_type=InstallChangeResult
            )
        except WorkflowUpdateFailedError as err:
            code, message = _code(err)
            log.info("rollout_change_refused", operation=inp.operation, install_id=t.install_id, error=code)
            result_name = "skipped" if code in _GONE else "failed"
            return InstallOutcome(
                tenant_id=t.tenant_id,
                install_id=t.install_id,
                wave=item.wave,
                result=result_name,
                error=code,
                message=message,
            )
        return InstallOutcome(
            tenant_id=t.tenant_id,
            install_id=t.install_id,
            wave=item.wave,
            result=done if result.changed else "skipped",
        )

    @activity.defn(name="measure_rollout_wave")
    async def measure_wave(self, inp: MeasureWaveInput) -> WaveMetrics:
        since = datetime.fromisoformat(inp.since)
        with activity_errors():
            new, old = await read_rollout.wave_call_stats(
                self.pool,
                inp.extension,
                inp.version,
                [(t.install_id, t.from_version) for t in inp.targets],
                since,
            )
        return WaveMetrics(
            new_calls=new.calls,
            new_errors=new.errors,
            new_p99_ms=new.p99_ms,
            old_calls=old.calls,
            old_errors=old.errors,
            old_p99_ms=old.p99_ms,
        )


def _code(err: WorkflowUpdateFailedError) -> tuple[str, str]:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type, cause.message
    return ErrorCode.WORKFLOW_FAILED.value, str(cause or err)
