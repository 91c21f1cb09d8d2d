"""InstallQuarantineWorkflow: one install quarantined by a trust-key revocation, as a child of RevokeKey.

RevokeKey runs under no tenant (a key spans tenants), so without this child an operator filtering
Temporal UI by `TenantId` would never see that an install of theirs was quarantined. The child carries
TenantId, ExtensionName, ExtensionVersion, ContentHash, Operation=quarantine and Actor (set when
RevokeKey starts it), and its id `install/<tenant>/<extension>/quarantine/<key id>/<install id>` is
fixed per (revocation, install).

Steps: invalidation on Redis ∥ audit row `install_quarantined` ∥ sync of the install's Temporal
Schedules, which pauses them (all idempotent, retried until done).
Invariants: the registry change (status quarantined, revision + 1, history row) is already committed by
RevokeKey's revoke_bundle_versions activity; this child writes nothing to the install. A second
revocation run starts no second child (RevokeKey starts it with ALLOW_DUPLICATE_FAILED_ONLY).
Compensation: none (revocation is one-way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.schedules import ScheduleActivities
    from schema.payloads.notify import InvalidateInput
    from schema.payloads.schedules import SyncSchedulesInput
    from schema.payloads.trust import QuarantinedInstall, QuarantineInstallInput
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit

QUARANTINE_OPERATION = "quarantine"
# Pausing the install's Schedules is a step older histories do not have.
SCHEDULES_PATCH = "quarantine-schedules"


@workflow.defn(name=WorkflowType.INSTALL_QUARANTINE)
class InstallQuarantineWorkflow:
    @workflow.run
    async def run(self, inp: QuarantineInstallInput) -> QuarantinedInstall:
        invalidate = workflow.execute_activity_method(
            NotifyActivities.publish_invalidation,
            InvalidateInput(
                tenant_id=inp.tenant_id,
                extension=inp.extension,
                install_id=inp.install_id,
                revision=inp.revision,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        record = audit(
            QUARANTINE_OPERATION,
            "install_quarantined",
            actor=inp.actor,
            tenant_id=inp.tenant_id,
            extension_name=inp.extension,
            version=inp.version,
            content_hash=inp.content_hash,
            after={
                "install_id": inp.install_id,
                "status": "quarantined",
                "revision": inp.revision,
                "key_id": inp.key_id,
                "reason": inp.reason,
                "revoke_workflow_id": inp.revoke_workflow_id,
            },
        )
        steps: list[Awaitable[object]] = [invalidate, record]
        if workflow.patched(SCHEDULES_PATCH):
            steps.append(
                workflow.execute_activity_method(
                    ScheduleActivities.sync_schedules,
                    SyncSchedulesInput(tenant_id=inp.tenant_id, extension=inp.extension),
                    start_to_close_timeout=SHORT,
                    retry_policy=RETRY,
                )
            )
        await asyncio.gather(*steps)
        return QuarantinedInstall(
            install_id=inp.install_id, tenant_id=inp.tenant_id, extension=inp.extension, revision=inp.revision
        )
