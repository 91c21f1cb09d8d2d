"""Scheduled invocations: one workflow per run, and an operator's pause or resume of a schedule.

ScheduledRunWorkflow (`WorkflowType.SCHEDULED_RUN`) is what an install's Temporal Schedule starts
(id `schedule/<tenant>/<extension>/<name>/run-<time>`) and what run-now starts (id
`.../manual/<request id>`). Steps: run_scheduled (registry read, advisory lock, one runner call,
execution_log row). A run whose guest failed (5xx, trap, fuel, deadline) fails the workflow with
scheduled_run_failed, so Temporal UI shows it red; a skipped run (install not active, schedule gone,
previous run still going) completes with outcome `skipped`.
Invariants: the call is never resent after the runner received it (the activity retries only when
the runner could not be reached); the run carries TenantId, ExtensionName, ExtensionVersion,
Operation=scheduled_run and Actor.

ScheduleControlWorkflow (`WorkflowType.SCHEDULE_CONTROL`, id `.../control/<request id>`): pause or
resume one Schedule, then an audit row. Compensation: none (one idempotent Temporal call).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.schedules import ScheduleActivities
    from schema.errors import ErrorCode
    from schema.payloads.schedules import (
        RUN_TIMEOUT,
        RunOutcome,
        ScheduleControlInput,
        ScheduleControlResult,
        ScheduledRunInput,
        ScheduledRunResult,
    )
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert

SCHEDULED_RUN_OPERATION = "scheduled_run"


@workflow.defn(name=WorkflowType.SCHEDULED_RUN)
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledRunInput) -> ScheduledRunResult:
        upsert(
            tenant_id=inp.tenant_id,
            extension_name=inp.extension,
            operation=SCHEDULED_RUN_OPERATION,
            actor=inp.actor if inp.actor != "schedule" else f"schedule:{inp.schedule}",
        )
        result = await workflow.execute_activity_method(
            ScheduleActivities.run_scheduled,
            inp,
            start_to_close_timeout=RUN_TIMEOUT,
            retry_policy=RETRY,
        )
        upsert(extension_version=result.version)
        if result.outcome is RunOutcome.ERROR:
            raise fail(
                ErrorCode.SCHEDULED_RUN_FAILED.value,
                f"schedule {inp.schedule!r} of {inp.extension}: {result.reason} "
                f"(status {result.status}, request {result.request_id})",
            )
        return result


@workflow.defn(name=WorkflowType.SCHEDULE_CONTROL)
class ScheduleControlWorkflow:
    @workflow.run
    async def run(self, inp: ScheduleControlInput) -> ScheduleControlResult:
        upsert(
            tenant_id=inp.tenant_id,
            extension_name=inp.extension,
            operation=f"schedule_{inp.action.value}",
            actor=inp.actor,
        )
        try:
            result = await workflow.execute_activity_method(
                ScheduleActivities.control_schedule, inp, start_to_close_timeout=SHORT, retry_policy=RETRY
            )
        except ActivityError as err:
            raise fail(*failure_code(err)) from None
        await audit(
            "control",
            f"schedule_{inp.action.value}" if result.changed else f"schedule_{inp.action.value}_noop",
            actor=inp.actor,
            tenant_id=inp.tenant_id,
            extension_name=inp.extension,
            after={"schedule": inp.schedule, "paused": result.paused, "note": result.note},
        )
        return result
