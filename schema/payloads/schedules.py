"""Scheduled invocations: a Temporal Schedule per (install, manifest schedule).

* Schedule id `install_schedule_id(tenant, extension, name)`; spec: the manifest cron (UTC); policy:
  overlap SKIP (a run still going when the next is due makes that one skip), catch-up window
  CATCHUP_WINDOW (after an outage of Temporal or the worker, runs missed within it fire once;
  older ones are skipped). Action: start `WorkflowType.SCHEDULED_RUN` with `ScheduledRunInput`.
* The install change workflows keep the Schedules in step with the registry (activity
  `sync_schedules`): created on install, updated on upgrade/rollback, deleted when the version no
  longer declares them or on uninstall, paused while the install is not active (disabled,
  quarantined, revoked version) with note SYSTEM_PAUSE_NOTE, resumed when it is again. A pause by an
  operator (ScheduleControl) carries the operator's note and survives disable/enable.
* A run (activity `run_scheduled`) reads the install and the schedule from the registry at run time,
  holds a Postgres advisory lock for (install, schedule) so no two runs (scheduled or run-now) overlap,
  calls the runner with the install's grants (no user), writes an execution_log row with principal
  `schedule:<name>`, and its guest logs reach the debug stream like any call's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

CATCHUP_WINDOW = timedelta(minutes=5)
# Set on Schedules paused because the install is not active; resumed by sync when it is again.
SYSTEM_PAUSE_NOTE = "extplane: install not active"
# Runs may last as long as the manifest's timeout (at most 300 s); the activity gets a margin.
RUN_TIMEOUT = timedelta(minutes=6)
# The response body a scheduled run keeps for its result (the rest is dropped, not stored).
MAX_RESULT_BODY_CHARS = 4000


class ScheduleTrigger(StrEnum):
    SCHEDULE = "schedule"  # the Temporal Schedule fired
    MANUAL = "manual"  # an operator's run-now


class RunOutcome(StrEnum):
    OK = "ok"  # the guest answered below 500
    ERROR = "error"  # the guest answered 5xx, trapped, ran out of fuel or time
    SKIPPED = "skipped"  # nothing ran: install not active, schedule gone, or a run still going


@dataclass(frozen=True, kw_only=True)
class ScheduledRunInput:
    tenant_id: str
    extension: str
    schedule: str
    trigger: ScheduleTrigger = ScheduleTrigger.SCHEDULE
    actor: str = "schedule"


@dataclass(frozen=True, kw_only=True)
class ScheduledRunResult:
    tenant_id: str
    extension: str
    schedule: str
    outcome: RunOutcome
    # Why nothing ran (skipped) or what failed (error: the runner's error code).
    reason: str = ""
    request_id: str = ""
    install_id: str = ""
    version: str = ""
    status: int = 0
    duration_ms: float = 0.0
    fuel_consumed: int | None = None
    # The start of the guest's answer (UTF-8, lossy), for Temporal UI; never secrets by construction
    # of the guest API (a guest that prints a secret into its response is the author's leak).
    body_preview: str = ""


@dataclass(frozen=True, kw_only=True)
class SyncSchedulesInput:
    tenant_id: str
    extension: str
    # Names the install's version declared before the change: deleted unless still declared.
    retire: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SyncSchedulesResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)  # paused by this sync (install not active)
    resumed: list[str] = field(default_factory=list)  # resumed by this sync (install active again)


class ScheduleAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, kw_only=True)
class ScheduleControlInput:
    """`WorkflowType.SCHEDULE_CONTROL`, id `schedule_control_workflow_id(...)`: an operator's pause or
    resume of one schedule of one install, audited."""

    tenant_id: str
    extension: str
    schedule: str
    action: ScheduleAction
    actor: str
    request_id: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ScheduleControlResult:
    tenant_id: str
    extension: str
    schedule: str
    paused: bool
    changed: bool
    note: str = ""
