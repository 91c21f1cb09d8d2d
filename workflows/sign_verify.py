"""SignVerifyWorkflow: a bundle's signature against the trust policy, as a child of publish.

Invariants:
  * the verdict comes from the trust_keys table as of the activity's clock: key known, scoped to the
    manifest's publisher, not revoked, not expired, statement = {content_hash, name, version, publisher};
  * every verdict, accepted or refused, is an audit row of this run.
Compensation: none needed (it writes only its audit row); a refusal fails the workflow with the
ApplicationError type of the reason (signature_invalid, untrusted_key, key_revoked, key_expired).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.trust import TrustActivities
    from schema.payloads.sign_verify import SignVerifyInput, SignVerifyResult, VerifySignatureInput
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert


@workflow.defn(name=WorkflowType.SIGN_VERIFY)
class SignVerifyWorkflow:
    @workflow.run
    async def run(self, inp: SignVerifyInput) -> SignVerifyResult:
        upsert(
            content_hash=inp.content_hash,
            extension_name=inp.name,
            extension_version=inp.version,
            operation="sign_verify",
            actor=inp.actor,
        )
        where: dict[str, Any] = {
            "extension_name": inp.name,
            "version": inp.version,
            "content_hash": inp.content_hash,
        }
        try:
            verified = await workflow.execute_activity_method(
                TrustActivities.verify_signature,
                VerifySignatureInput(
                    content_hash=inp.content_hash,
                    name=inp.name,
                    version=inp.version,
                    publisher=inp.publisher,
                    signature=inp.signature,
                ),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            code, message = failure_code(err)
            await audit("rejected", "signature_rejected", actor=inp.actor, after={"error": code}, **where)
            raise fail(code, message) from None
        await audit(
            "verified",
            "signature_verified",
            actor=inp.actor,
            after={"signer_key_id": verified.signer_key_id},
            **where,
        )
        return SignVerifyResult(signer_key_id=verified.signer_key_id, verified_at=verified.verified_at)
