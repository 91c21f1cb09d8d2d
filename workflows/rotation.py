"""RotateMasterKeyWorkflow: re-wrap every install data key with the newest master key.

Started on demand (`extctl` / API) or by the Temporal Schedule of `workflows.schedules`.
Invariants: secret ciphertexts never change, only the wrapping of their data keys; a data key is
always readable (unwrapped with the version it names) during and after the run; batches are idempotent
(keys already under the newest version are skipped), so a rerun or two concurrent runs are harmless.
Compensation: none needed: every batch commits a consistent state.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.secrets import SecretsActivities
    from schema.payloads.rotation import RewrapDataKeysInput, RotateMasterKeyInput, RotateMasterKeyResult
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, audit, upsert


@workflow.defn(name=WorkflowType.ROTATE_MASTER_KEY)
class RotateMasterKeyWorkflow:
    @workflow.run
    async def run(self, inp: RotateMasterKeyInput) -> RotateMasterKeyResult:
        upsert(operation="rotate_master_key", actor=inp.actor)
        total = 0
        target = 0
        while True:
            batch = await workflow.execute_activity_method(
                SecretsActivities.rewrap_data_keys,
                RewrapDataKeysInput(batch_size=inp.batch_size),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
            total += batch.rewrapped
            target = batch.target_version
            if batch.done:
                break
        await audit(
            "rotated",
            "master_key_rotated",
            actor=inp.actor,
            after={"target_version": target, "rewrapped": total},
        )
        return RotateMasterKeyResult(target_version=target, rewrapped=total)
