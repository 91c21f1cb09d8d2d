"""RolloutWorkflow: one extension version rolled out to a fleet of installs in waves, id `rollout/<id>`.

Steps of one run (a run handles one wave, then continues as new so thousands of installs and many
waves never grow one history past its limits):
  1. first run only: select the installs (active, of the extension, at another version, in the given
     tenants) and fix the wave bounds (schema.rollout.wave_bounds);
  2. hold while paused (RolloutState=paused);
  3. upgrade the wave's installs through their install entities (activity apply_rollout_wave; request
     ids `rollout-<id>-<wave>-upgrade`, so a retried or replayed send is a no-op);
  4. soak: a durable timer of `soak_seconds` (an abort ends it early);
  5. measure the wave (execution_log: new version since the upgrade vs old version in an equal window
     before) and check it against the thresholds (schema.rollout.regression);
  6. continue as new with the progress, or complete after the last wave.
Compensation: a refused upgrade, a regression or metrics that cannot be read halt the rollout and roll
back every install it upgraded, to the version each was at (request ids
`rollout-<id>-<wave>-rollback`); the rollout ends `rolled_back`. An abort ends it `aborted`, after the
same rollback unless the abort asked for none.
Invariants: every change goes through InstallWorkflow (serialized with other changes of the install,
audited); the search attribute RolloutState always holds the current phase.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.rollout import RolloutActivities
    from schema.errors import ErrorCode
    from schema.payloads.rollout import (
        ApplyWaveInput,
        ApplyWaveResult,
        InstallOutcome,
        MeasureWaveInput,
        RolloutControl,
        RolloutInput,
        RolloutPhase,
        RolloutProgress,
        RolloutStatus,
        SelectTargetsInput,
        WaveMetrics,
        WaveReport,
        WaveTarget,
    )
    from schema.rollout import regression, wave_bounds
    from schema.temporal import (
        ROLLOUT_ABORT_UPDATE,
        ROLLOUT_PAUSE_UPDATE,
        ROLLOUT_RESUME_UPDATE,
        ROLLOUT_STATUS_QUERY,
        SearchAttribute,
        WorkflowType,
    )
    from workflows._common import RETRY, SHORT, fail, failure_code, upsert

ROLLOUT_STATE = SearchAttributeKey.for_keyword(SearchAttribute.ROLLOUT_STATE.value)
ROLLOUT_OPERATION = "rollout"
# One wave's changes: each is an entity Update taking well under a second, many run in parallel; the
# heartbeat after each lets a retry start soon after a worker dies mid-wave.
WAVE_TIMEOUT = timedelta(hours=1)
WAVE_HEARTBEAT = timedelta(seconds=30)
Phase = RolloutPhase


@workflow.defn(name=WorkflowType.ROLLOUT)
class RolloutWorkflow:
    @workflow.init
    def __init__(self, inp: RolloutInput) -> None:
        p = inp.progress or RolloutProgress()
        self._inp = inp
        self._targets = list(p.targets)
        self._bounds = list(p.bounds)
        self._selected = p.selected
        self._next = p.next_wave
        self._paused = p.paused
        self._outcomes = list(p.outcomes)
        self._waves = list(p.waves)
        self._phase = Phase.RUNNING
        self._reason = ""
        self._abort: RolloutControl | None = None
        self._upserted = False  # RolloutState set in this run

    @workflow.run
    async def run(self, inp: RolloutInput) -> RolloutStatus:
        upsert(extension_name=inp.extension, extension_version=inp.version, operation=ROLLOUT_OPERATION)
        self._set_phase(Phase.RUNNING)
        if not self._selected:
            found = await workflow.execute_activity_method(
                RolloutActivities.select_targets,
                SelectTargetsInput(extension=inp.extension, version=inp.version, tenants=inp.tenants),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            self._targets = list(found.targets)
            self._bounds = wave_bounds(inp.waves, len(self._targets))
            self._selected = True
        if self._next >= len(self._bounds):
            return self._finish(Phase.COMPLETED, "")
        await self._hold()
        if self._abort is not None:
            return await self._aborted(self._abort)
        return await self._wave(inp, self._next)

    async def _wave(self, inp: RolloutInput, wave: int) -> RolloutStatus:
        batch = self._targets[(self._bounds[wave - 1] if wave else 0) : self._bounds[wave]]
        sent = await self._apply("upgrade", [WaveTarget(wave=wave, target=t) for t in batch])
        refused = [o for o in sent.outcomes if o.result == "failed"]
        if refused:
            why = f"{len(refused)} upgrade(s) refused in wave {wave + 1}, first: {refused[0].error}"
            return await self._roll_back(Phase.ROLLED_BACK, why)
        self._set_phase(Phase.SOAKING)
        try:
            await workflow.wait_condition(
                lambda: self._abort is not None, timeout=timedelta(seconds=inp.soak_seconds)
            )
        except TimeoutError:
            pass
        if self._abort is not None:
            return await self._aborted(self._abort)
        self._set_phase(Phase.RUNNING)
        upgraded = {o.install_id for o in sent.outcomes if o.result == "upgraded"}
        try:
            metrics = await workflow.execute_activity_method(
                RolloutActivities.measure_wave,
                MeasureWaveInput(
                    extension=inp.extension,
                    version=inp.version,
                    targets=[t for t in batch if t.install_id in upgraded],
                    since=sent.at,
                ),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            code, message = failure_code(err)
            return await self._roll_back(
                Phase.ROLLED_BACK, f"wave {wave + 1} metrics unreadable ({code}): {message}"
            )
        why = regression(metrics, inp.thresholds)
        self._waves.append(_report(wave, len(batch), sent.at, metrics, why))
        if why:
            return await self._roll_back(Phase.ROLLED_BACK, f"wave {wave + 1}: {why}")
        self._next = wave + 1
        if self._next >= len(self._bounds):
            return self._finish(Phase.COMPLETED, "")
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(replace(inp, progress=self._progress()))

    async def _hold(self) -> None:
        if not self._paused:
            return
        self._set_phase(Phase.PAUSED)
        await workflow.wait_condition(lambda: not self._paused or self._abort is not None)
        self._set_phase(Phase.RUNNING)

    async def _apply(self, operation: str, targets: list[WaveTarget]) -> ApplyWaveResult:
        result = await workflow.execute_activity_method(
            RolloutActivities.apply_wave,
            ApplyWaveInput(
                rollout_id=self._inp.rollout_id,
                extension=self._inp.extension,
                operation=operation,
                version=self._inp.version,
                targets=targets,
                actor=self._inp.actor,
            ),
            start_to_close_timeout=WAVE_TIMEOUT,
            heartbeat_timeout=WAVE_HEARTBEAT,
            retry_policy=RETRY,
        )
        self._outcomes.extend(result.outcomes)
        return result

    async def _aborted(self, control: RolloutControl) -> RolloutStatus:
        why = f"aborted by {control.actor}" + (f": {control.reason}" if control.reason else "")
        if control.rollback:
            return await self._roll_back(Phase.ABORTED, why)
        return self._finish(Phase.ABORTED, why)

    async def _roll_back(self, final: RolloutPhase, reason: str) -> RolloutStatus:
        self._reason = reason
        self._set_phase(Phase.ROLLING_BACK)
        workflow.logger.info("rollout_rolling_back", extra={"reason": reason})
        by_id = {t.install_id: t for t in self._targets}
        todo = [
            WaveTarget(wave=o.wave, target=by_id[o.install_id])
            for o in _latest(self._outcomes).values()
            if o.result == "upgraded" and o.install_id in by_id
        ]
        if todo:
            await self._apply("rollback", todo)
        return self._finish(final, reason)

    def _finish(self, phase: RolloutPhase, reason: str) -> RolloutStatus:
        self._reason = reason
        self._set_phase(phase)
        return self._status()

    def _set_phase(self, phase: RolloutPhase) -> None:
        if phase is not self._phase or not self._upserted:
            workflow.upsert_search_attributes([ROLLOUT_STATE.value_set(phase.value)])
            self._upserted = True
        self._phase = phase

    def _progress(self) -> RolloutProgress:
        return RolloutProgress(
            targets=self._targets,
            bounds=self._bounds,
            selected=self._selected,
            next_wave=self._next,
            paused=self._paused,
            outcomes=self._outcomes,
            waves=self._waves,
        )

    def _status(self) -> RolloutStatus:
        latest = _latest(self._outcomes)
        count = {
            r: sum(1 for o in latest.values() if o.result == r) for r in ("upgraded", "rolled_back", "failed")
        }
        return RolloutStatus(
            rollout_id=self._inp.rollout_id,
            extension=self._inp.extension,
            version=self._inp.version,
            state=self._phase,
            wave=len(self._waves),
            waves_total=len(self._bounds),
            installs_total=len(self._targets),
            upgraded=count["upgraded"],
            rolled_back=count["rolled_back"],
            failed=count["failed"],
            paused=self._paused,
            reason=self._reason,
            waves=list(self._waves),
            outcomes=list(self._outcomes),
        )

    @workflow.query(name=ROLLOUT_STATUS_QUERY)
    def status(self) -> RolloutStatus:
        return self._status()

    @workflow.update(name=ROLLOUT_PAUSE_UPDATE)
    def pause(self, control: RolloutControl) -> RolloutStatus:
        self._paused = True
        workflow.logger.info("rollout_paused", extra={"actor": control.actor})
        return self._status()

    @workflow.update(name=ROLLOUT_RESUME_UPDATE)
    def resume(self, control: RolloutControl) -> RolloutStatus:
        self._paused = False
        workflow.logger.info("rollout_resumed", extra={"actor": control.actor})
        return self._status()

    @workflow.update(name=ROLLOUT_ABORT_UPDATE)
    def abort(self, control: RolloutControl) -> RolloutStatus:
        self._abort = control
        return self._status()

    @pause.validator
    def _validate_pause(self, control: RolloutControl) -> None:
        self._refuse_when_settled("pause", control)

    @resume.validator
    def _validate_resume(self, control: RolloutControl) -> None:
        self._refuse_when_settled("resume", control)

    @abort.validator
    def _validate_abort(self, control: RolloutControl) -> None:
        self._refuse_when_settled("abort", control)

    def _refuse_when_settled(self, action: str, control: RolloutControl) -> None:
        if control.reason and len(control.reason) > 500:
            raise fail(ErrorCode.INVALID_REQUEST, "reason is at most 500 characters")
        if self._phase.terminal or self._phase is Phase.ROLLING_BACK or self._abort is not None:
            raise fail(ErrorCode.CONFLICT, f"cannot {action} a rollout that is {self._settled_phase()}")

    def _settled_phase(self) -> str:
        return "aborting" if self._abort is not None and not self._phase.terminal else self._phase.value


def _latest(outcomes: list[InstallOutcome]) -> dict[str, InstallOutcome]:
    """The last outcome of each install (a rollback follows its upgrade)."""
    latest: dict[str, InstallOutcome] = {}
    for o in outcomes:
        latest[o.install_id] = o
    return latest


def _report(wave: int, installs: int, at: str, metrics: WaveMetrics, why: str) -> WaveReport:
    return WaveReport(wave=wave + 1, installs=installs, upgraded_at=at, metrics=metrics, regression=why)
