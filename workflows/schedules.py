"""The Temporal Schedule that rotates the master key periodically (client side, not a workflow).

`ensure_rotation_schedule` is idempotent: it creates the schedule, or updates its cron and task queue
when it exists. The worker calls it at start-up; operators can also trigger the workflow on demand.
"""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from schema.payloads.rotation import RotateMasterKeyInput
from schema.temporal import CONTROL_TASK_QUEUE, ROTATION_SCHEDULE_ID, WorkflowType


def _schedule(cron: str, task_queue: str, schedule_id: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WorkflowType.ROTATE_MASTER_KEY.value,
            RotateMasterKeyInput(actor=f"schedule:{schedule_id}"),
            id=f"{schedule_id}/scheduled",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[cron]),
    )


async def ensure_rotation_schedule(
    client: Client,
    *,
    cron: str = "0 3 * * 0",
    task_queue: str = CONTROL_TASK_QUEUE,
    schedule_id: str = ROTATION_SCHEDULE_ID,
) -> str:
    """Create or update the rotation schedule; returns its id."""
    schedule = _schedule(cron, task_queue, schedule_id)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def _update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(_update)
    return schedule_id
