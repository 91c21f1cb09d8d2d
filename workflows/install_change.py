"""InstallChangeWorkflow: one change of one install, run as a child of the Install entity workflow.

Each change is its own workflow (id `install/<tenant>/<extension>/change/<request id>`) with the search
attributes TenantId, ExtensionName, ExtensionVersion, ContentHash, Operation and Actor, so Temporal UI
lists every install, upgrade, rollback, config or secret rotation separately and filterably. Version and
content hash are those the install is at after the change (for an uninstall: was at before it).

Steps: apply (one registry transaction: revision + 1, install_history row) [→ store secrets when the
install carries initial secrets, or for set_secrets] → audit row (before/after) ∥ invalidation on Redis
∥ [sync of the install's Temporal Schedules when its version declares any, before or after the change,
for install/upgrade/rollback/enable/disable/uninstall (schema.payloads.schedules)].

Invariants:
  * only verified versions are installed, upgraded or rolled back to (version_not_installable);
  * granted = what the version requests (manifest capabilities ∪ defaults, egress hosts) minus what the
    operator denied; a version change that adds anything needs the operator's `accept` for exactly
    that, else consent_required (schema.install_rules, checked inside the apply transaction);
  * every change bumps the revision exactly once, even when the worker dies between steps: the apply
    activity recognizes this workflow's own history row and returns the recorded outcome;
  * secret values arrive sealed and are only opened inside the secrets activity.
Compensation: none: the change is a single transaction, and the later steps (audit, invalidation) are
idempotent and retried until they succeed. A refused change writes nothing and fails with its code.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.registry import RegistryActivities
    from activities.schedules import ScheduleActivities
    from activities.secrets import SecretsActivities
    from schema.payloads.install import (
        ApplyInstallChangeInput,
        InstallChangeInput,
        InstallChangeResult,
        InstallOperation,
    )
    from schema.payloads.notify import InvalidateInput
    from schema.payloads.schedules import SyncSchedulesInput
    from schema.payloads.secrets import SetSecretsInput
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert

# ContentHash (and, for an uninstall, ExtensionVersion) joined the second upsert: histories of older
# workers recorded no upsert at all there when the version was empty (an uninstall).
CONTENT_HASH_PATCH = "install-change-content-hash"
# Syncing the install's Temporal Schedules is a step older histories do not have.
SCHEDULES_PATCH = "install-change-schedules"
_SCHEDULE_OPS = frozenset(
    {
        InstallOperation.INSTALL,
        InstallOperation.UPGRADE,
        InstallOperation.ROLLBACK,
        InstallOperation.ENABLE,
        InstallOperation.DISABLE,
        InstallOperation.UNINSTALL,
    }
)


@workflow.defn(name=WorkflowType.INSTALL_CHANGE)
class InstallChangeWorkflow:
    @workflow.run
    async def run(self, inp: InstallChangeInput) -> InstallChangeResult:
        req = inp.request
        wf_id = workflow.info().workflow_id
        upsert(
            tenant_id=inp.tenant_id,
            extension_name=inp.extension,
            extension_version=req.version,
            operation=req.operation.value,
            actor=req.actor,
        )
        before: dict[str, object] | None = None
        after: dict[str, object] | None = None
        retire: list[str] = []
        scheduled = False
        try:
            if req.operation is InstallOperation.SET_SECRETS:
                result, replaced = await self._set_secrets(
                    inp,
                    wf_id,
                    InstallChangeResult(
                        request_id=req.request_id,
                        operation=req.operation,
                        tenant_id=inp.tenant_id,
                        extension=inp.extension,
                        workflow_id=wf_id,
                    ),
                )
                before = {"secret_names": replaced}
            else:
                applied = await workflow.execute_activity_method(
                    RegistryActivities.apply_install_change,
                    ApplyInstallChangeInput(
                        tenant_id=inp.tenant_id,
                        extension=inp.extension,
                        request_id=req.request_id,
                        operation=req.operation,
                        workflow_id=wf_id,
                        version=req.version,
                        config=req.config,
                        rate_limit_rps=req.rate_limit_rps,
                        rate_limit_burst=req.rate_limit_burst,
                        debug_enabled=req.debug_enabled,
                        accept=req.accept,
                        deny=req.deny,
                        config_merge=req.config_merge,
                        drop_schedules=req.drop_schedules,
                    ),
                    start_to_close_timeout=SHORT,
                    retry_policy=RETRY,
                )
                result, before, after = applied.change, applied.before, applied.after
                retire = applied.schedules_before
                scheduled = bool(applied.schedules_before or applied.schedules_after)
                if req.operation is InstallOperation.INSTALL and req.secrets is not None:
                    result, _ = await self._set_secrets(inp, wf_id, result)
        except ActivityError as err:
            code, message = failure_code(err)
            await audit(
                "rejected",
                f"{req.operation.value}_rejected",
                actor=req.actor,
                tenant_id=inp.tenant_id,
                extension_name=inp.extension,
                version=req.version or None,
                after={"error": code, "message": message},
            )
            raise fail(code, message) from None
        # An uninstall leaves no version: it is filed under the one it removed.
        removed = before if not result.version else None
        at_version = result.version or (result.previous_version if removed else "")
        at_hash = result.content_hash or str((removed or {}).get("content_hash") or "")
        if workflow.patched(CONTENT_HASH_PATCH):
            upsert(extension_version=at_version, content_hash=at_hash)
        else:
            upsert(extension_version=result.version)
        if req.secrets is not None:
            after = {**(after or {}), "secret_names": sorted(req.secrets.key_names)}
        # Audit and invalidation are independent and idempotent: run them side by side.
        follow_ups = [
            audit(
                "change",
                req.operation.value if result.changed else f"{req.operation.value}_noop",
                actor=req.actor,
                tenant_id=inp.tenant_id,
                extension_name=inp.extension,
                version=at_version or None,
                content_hash=at_hash or None,
                before=before,
                after=after,
            )
        ]
        if result.changed and result.install_id:
            follow_ups.append(self._invalidate(inp, result))
        if (
            scheduled
            and result.changed
            and req.operation in _SCHEDULE_OPS
            and workflow.patched(SCHEDULES_PATCH)
        ):
            follow_ups.append(self._sync_schedules(inp, retire))
        await asyncio.gather(*follow_ups)
        return result

    async def _sync_schedules(self, inp: InstallChangeInput, retire: list[str]) -> None:
        """Bring the install's Schedules in step. Never fails the change, which is committed: a run
        checks the install itself (a Schedule left unpaused only fires skipped runs), and the next
        change of the install syncs again."""
        try:
            await workflow.execute_activity_method(
                ScheduleActivities.sync_schedules,
                SyncSchedulesInput(tenant_id=inp.tenant_id, extension=inp.extension, retire=retire),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            workflow.logger.warning("schedule sync failed: %s", failure_code(err)[1])

    async def _invalidate(self, inp: InstallChangeInput, result: InstallChangeResult) -> None:
        await workflow.execute_activity_method(
            NotifyActivities.publish_invalidation,
            InvalidateInput(
                tenant_id=inp.tenant_id,
                extension=inp.extension,
                install_id=result.install_id,
                revision=result.revision,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )

    async def _set_secrets(
        self, inp: InstallChangeInput, wf_id: str, result: InstallChangeResult
    ) -> tuple[InstallChangeResult, list[str]]:
        """The result with the stored secrets version, and the key names of the secrets it replaced."""
        assert inp.request.secrets is not None  # the entity's validator guarantees it
        stored = await workflow.execute_activity_method(
            SecretsActivities.set_secrets,
            SetSecretsInput(
                tenant_id=inp.tenant_id,
                extension=inp.extension,
                sealed=inp.request.secrets,
                workflow_id=wf_id,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        changed = replace(
            result,
            install_id=stored.install_id,
            revision=stored.revision,
            secrets_version=stored.secrets_version,
            version=result.version or stored.version,
            content_hash=result.content_hash or stored.content_hash,
            status=result.status or stored.status,
            changed=True,
        )
        return changed, stored.previous_key_names
