"""Trust policy workflows: AddTrustKeyWorkflow and RevokeKeyWorkflow (`extctl trust add|revoke`).

AddTrustKeyWorkflow — invariants: the key id matches the PEM; a key id is trusted for one publisher
only; a revoked key is never trusted again. Compensation: none (one idempotent insert), audited.

RevokeKeyWorkflow — id `revoke-key/<key id>`. Steps, each audited:
  1. mark the key revoked (first revocation time wins);
  2. list every bundle the key signed;
  3. re-verify each against the policy (a revoked key fails with key_revoked);
  4. for each bundle that no longer verifies: mark its versions revoked, quarantine the installs running
     them (revision + history row each) and, per install, start a child InstallQuarantineWorkflow
     (workflows/quarantine.py) that publishes the invalidation, so gateways stop serving it at once, and
     writes the `install_quarantined` audit row under the install's TenantId.
Invariants: after completion no install is active on a version signed only by the revoked key; the
run is idempotent (every step is, so a retry or a second run quarantines nothing twice: the child id is
fixed per (key, install) and a completed child is never started again).
Compensation: none: revocation is deliberately one-way; an operator re-publishes under a new key and
upgrades the quarantined installs.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.trust import TrustActivities
    from schema.payloads.common import VersionRef
    from schema.payloads.notify import InvalidateInput
    from schema.payloads.sign_verify import VerifySignatureInput
    from schema.payloads.trust import (
        AddTrustKeyInput,
        AddTrustKeyResult,
        ListSignedInput,
        MarkKeyRevokedInput,
        QuarantinedInstall,
        QuarantineInstallInput,
        RevokeKeyInput,
        RevokeKeyResult,
        RevokeVersionInput,
    )
    from schema.temporal import WorkflowType, install_quarantine_workflow_id
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, search_attributes, upsert
    from workflows.quarantine import QUARANTINE_OPERATION, InstallQuarantineWorkflow

# Quarantines run as per-install child workflows (TenantId set) instead of inline activities; histories
# of older workers ran the invalidation and the audit here.
QUARANTINE_CHILD_PATCH = "revoke-key-quarantine-children"


@workflow.defn(name=WorkflowType.ADD_TRUST_KEY)
class AddTrustKeyWorkflow:
    @workflow.run
    async def run(self, inp: AddTrustKeyInput) -> AddTrustKeyResult:
        upsert(operation="trust_add", actor=inp.actor)
        try:
            result = await workflow.execute_activity_method(
                TrustActivities.add_trust_key, inp, start_to_close_timeout=SHORT, retry_policy=RETRY
            )
        except ActivityError as err:
            code, message = failure_code(err)
            await audit(
                "rejected", "trust_key_rejected", actor=inp.actor, after={"key_id": inp.key_id, "error": code}
            )
            raise fail(code, message) from None
        await audit(
            "added",
            "trust_key_added" if result.added else "trust_key_noop",
            actor=inp.actor,
            after={"key_id": inp.key_id, "publisher": inp.publisher},
        )
        return result


@workflow.defn(name=WorkflowType.REVOKE_KEY)
class RevokeKeyWorkflow:
    @workflow.run
    async def run(self, inp: RevokeKeyInput) -> RevokeKeyResult:
        upsert(operation="trust_revoke", actor=inp.actor)
        wf_id = workflow.info().workflow_id
        now = workflow.now()
        try:
            marked = await workflow.execute_activity_method(
                TrustActivities.mark_key_revoked,
                MarkKeyRevokedInput(key_id=inp.key_id, reason=inp.reason, revoked_at=now),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            raise fail(*failure_code(err)) from None
        await audit(
            "key-revoked",
            "trust_key_revoked",
            actor=inp.actor,
            before={"key_id": inp.key_id, "revoked": marked.already_revoked},
            after={"key_id": inp.key_id, "revoked": True, "reason": inp.reason},
        )
        signed = await workflow.execute_activity_method(
            TrustActivities.list_signed_bundles,
            ListSignedInput(key_id=inp.key_id),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        revoked: list[VersionRef] = []
        quarantined: list[QuarantinedInstall] = []
        for bundle in sorted(signed.bundles, key=lambda b: (b.content_hash, b.name, b.version)):
            try:
                await workflow.execute_activity_method(
                    TrustActivities.verify_signature,
                    VerifySignatureInput(
                        content_hash=bundle.content_hash,
                        name=bundle.name,
                        version=bundle.version,
                        publisher=bundle.publisher,
                        signature=bundle.signature,
                    ),
                    start_to_close_timeout=SHORT,
                    retry_policy=RETRY,
                )
                continue  # still verifies (cannot happen once the signer is revoked; kept for safety)
            except ActivityError as err:
                reason = failure_code(err)[0]
            result = await workflow.execute_activity_method(
                TrustActivities.revoke_bundle_versions,
                RevokeVersionInput(content_hash=bundle.content_hash, revoked_at=now, workflow_id=wf_id),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            revoked.extend(result.versions)
            quarantined.extend(result.quarantined)
            await audit(
                f"revoke-version/{bundle.content_hash}",
                "version_revoked",
                actor=inp.actor,
                extension_name=bundle.name,
                version=bundle.version,
                content_hash=bundle.content_hash,
                before={"status": bundle.status},
                after={"status": "revoked", "reason": reason, "key_id": inp.key_id},
            )
            if result.quarantined and workflow.patched(QUARANTINE_CHILD_PATCH):
                await asyncio.gather(
                    *(
                        _quarantine(inp, q, bundle.version, bundle.content_hash, reason, wf_id)
                        for q in result.quarantined
                    )
                )
                continue
            for q in result.quarantined:
                await workflow.execute_activity_method(
                    NotifyActivities.publish_invalidation,
                    InvalidateInput(
                        tenant_id=q.tenant_id,
                        extension=q.extension,
                        install_id=q.install_id,
                        revision=q.revision,
                    ),
                    start_to_close_timeout=SHORT,
                    retry_policy=RETRY,
                )
                await audit(
                    f"quarantine/{q.install_id}",
                    "install_quarantined",
                    actor=inp.actor,
                    tenant_id=q.tenant_id,
                    extension_name=q.extension,
                    version=bundle.version,
                    content_hash=bundle.content_hash,
                    after={"install_id": q.install_id, "status": "quarantined", "revision": q.revision},
                )
        return RevokeKeyResult(
            key_id=inp.key_id,
            revoked_versions=revoked,
            quarantined_installs=quarantined,
            already_revoked=marked.already_revoked,
        )


async def _quarantine(
    inp: RevokeKeyInput, q: QuarantinedInstall, version: str, content_hash: str, reason: str, wf_id: str
) -> None:
    """The child workflow of one quarantined install; nothing when an earlier run already ran it."""
    try:
        await workflow.execute_child_workflow(
            InstallQuarantineWorkflow.run,
            QuarantineInstallInput(
                install_id=q.install_id,
                tenant_id=q.tenant_id,
                extension=q.extension,
                revision=q.revision,
                version=version,
                content_hash=content_hash,
                key_id=inp.key_id,
                reason=reason,
                actor=inp.actor,
                revoke_workflow_id=wf_id,
            ),
            id=install_quarantine_workflow_id(q.tenant_id, q.extension, inp.key_id, q.install_id),
            task_queue=workflow.info().task_queue,
            # A completed quarantine is never repeated; a failed or terminated one may be re-run.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=search_attributes(
                tenant_id=q.tenant_id,
                extension_name=q.extension,
                extension_version=version,
                content_hash=content_hash,
                operation=QUARANTINE_OPERATION,
                actor=inp.actor,
            ),
        )
    except WorkflowAlreadyStartedError:
        pass  # a second run of the revocation: this install was quarantined (and told) by the first
