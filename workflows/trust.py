"""Trust policy workflows: AddTrustKeyWorkflow and RevokeKeyWorkflow (`extctl trust add|revoke`).

AddTrustKeyWorkflow — invariants: the key id matches the PEM; a key id is trusted for one publisher
only; a revoked key is never trusted again. Compensation: none (one idempotent insert), audited.

RevokeKeyWorkflow — id `revoke-key/<key id>`. Steps, each audited:
  1. mark the key revoked (first revocation time wins);
  2. list every bundle the key signed;
  3. re-verify each against the policy (a revoked key fails with key_revoked);
  4. for each bundle that no longer verifies: mark its versions revoked, quarantine the installs running
     them (revision + history row each) and publish an invalidation per install, so gateways stop
     serving them at once.
Invariants: after completion no install is active on a version signed only by the revoked key; the
run is idempotent (every step is, so a retry or a second run quarantines nothing twice).
Compensation: none: revocation is deliberately one-way; an operator re-publishes under a new key and
upgrades the quarantined installs.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

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
        RevokeKeyInput,
        RevokeKeyResult,
        RevokeVersionInput,
    )
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert


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
            for q in result.quarantined:
                quarantined.append(q)
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
