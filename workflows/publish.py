"""PublishWorkflow: a staged upload becomes a verified, precompiled, registered version.

    inspect ─► lookup ─► SignVerifyWorkflow (child) ─► check namespace ─► precompile (compile queue)
            ─► promote ─► register (+ claim of an unregistered namespace)

Id `publish/<sha256 hex>` (schema.temporal.publish_workflow_id): one publish per content hash at a time.

Invariants:
  * nothing is trusted before `inspect_bundle` re-hashed the bytes against the declared hash, unpacked
    them safely and validated the manifest;
  * a version row exists only together with its bundle row, endpoints and a promoted blob
    (`bundles/<hex>.tar.zst`): register runs last, in one transaction;
  * name@version is immutable: another hash fails with `version_exists`; the same hash again returns the
    earlier result (`already_published=True`) and changes nothing;
  * a new name's namespace belongs to the signing publisher (docs/bundles.md "Namespaces"): checked
    after the signature, before any blob or row is written (`namespace_owned`, or
    `namespace_unregistered` under the strict policy), and again in the register transaction, which
    also claims an unregistered namespace for the publisher (the `published` audit row's
    `after.namespace_claimed`);
  * every outcome is an audit row, and the failure type is an ErrorCode.
Compensation: on any failure after inspection the blobs this run wrote (artifact, promoted bundle) and
the staged upload are deleted, so a failed publish leaves no registry rows and no promoted blob. A
successful publish deletes the staged upload too.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.bundles import BundleActivities
    from activities.compile import CompileActivities
    from activities.namespaces import NamespaceActivities
    from activities.registry import RegistryActivities
    from schema.errors import ErrorCode
    from schema.payloads.namespaces import CheckNamespaceInput
    from schema.payloads.publish import (
        DiscardBlobsInput,
        InspectBundleInput,
        LookupPublishedInput,
        PrecompileInput,
        PromoteBundleInput,
        PublishInput,
        PublishResult,
        RegisterVersionInput,
    )
    from schema.payloads.sign_verify import SignVerifyInput
    from schema.temporal import WorkflowType, compile_task_queue_for, sign_verify_workflow_id
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert
    from workflows.sign_verify import SignVerifyWorkflow

COMPILE_TIMEOUT = timedelta(minutes=10)
COMPILE_HEARTBEAT = timedelta(seconds=20)
# workflow.patched id of the namespace check and claim (histories before it replay without them).
NAMESPACE_PATCH = "namespace-ownership"


@workflow.defn(name=WorkflowType.PUBLISH)
class PublishWorkflow:
    def __init__(self) -> None:
        self._written: list[str] = []  # blob keys this run created: compensation deletes them

    @workflow.run
    async def run(self, inp: PublishInput) -> PublishResult:
        upsert(content_hash=inp.content_hash, operation="publish", actor=inp.actor)
        try:
            result = await self._publish(inp)
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            code, message = failure_code(err)
            await asyncio.gather(
                self._discard([*self._written, inp.staging_key]),
                audit(
                    "rejected",
                    "publish_rejected",
                    actor=inp.actor,
                    content_hash=inp.content_hash,
                    after={"error": code, "message": message},
                ),
            )
            raise fail(code, message) from None
        await asyncio.gather(
            self._discard([inp.staging_key]),
            audit(
                "published",
                "publish_noop" if result.already_published else "published",
                actor=inp.actor,
                extension_name=result.name,
                version=result.version,
                content_hash=result.content_hash,
                after={
                    "signer_key_id": result.signer_key_id,
                    "bundle_key": result.bundle_key,
                    # The claim of an unregistered namespace is audited with the publish that made it.
                    **({"namespace_claimed": result.claimed_namespace} if result.claimed_namespace else {}),
                },
            ),
        )
        return result

    async def _publish(self, inp: PublishInput) -> PublishResult:
        info = workflow.info()
        inspected = await workflow.execute_activity_method(
            BundleActivities.inspect_bundle,
            InspectBundleInput(staging_key=inp.staging_key, content_hash=inp.content_hash),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        upsert(extension_name=inspected.name, extension_version=inspected.version)
        found = await workflow.execute_activity_method(
            RegistryActivities.lookup_published,
            LookupPublishedInput(
                content_hash=inp.content_hash, name=inspected.name, version=inspected.version
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        if found.status == "same" and found.existing is not None:
            return replace(found.existing, already_published=True)
        if found.status == "conflict":
            raise fail(
                ErrorCode.VERSION_EXISTS,
                f"{inspected.name}@{inspected.version} is already published with {found.existing_hash}",
            )
        verified = await workflow.execute_child_workflow(
            SignVerifyWorkflow.run,
            SignVerifyInput(
                content_hash=inp.content_hash,
                name=inspected.name,
                version=inspected.version,
                publisher=inspected.publisher,
                signature=inp.signature,
                actor=inp.actor,
            ),
            id=sign_verify_workflow_id(inp.content_hash),
            task_queue=info.task_queue,
        )
        claim = ""
        if workflow.patched(NAMESPACE_PATCH):
            # The publisher is the verified signer's now; refuse before any blob or row is written.
            checked = await workflow.execute_activity_method(
                NamespaceActivities.check_namespace,
                CheckNamespaceInput(name=inspected.name, publisher=inspected.publisher),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            claim = checked.namespace if checked.status == "claim" else ""
        compiled = await workflow.execute_activity_method(
            CompileActivities.precompile_component,
            PrecompileInput(staging_key=inp.staging_key, content_hash=inp.content_hash),
            task_queue=compile_task_queue_for(info.task_queue),
            start_to_close_timeout=COMPILE_TIMEOUT,
            heartbeat_timeout=COMPILE_HEARTBEAT,
            retry_policy=RETRY,
        )
        self._written.append(compiled.artifact_key)
        promoted = await workflow.execute_activity_method(
            BundleActivities.promote_bundle,
            PromoteBundleInput(staging_key=inp.staging_key, content_hash=inp.content_hash),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        self._written.append(promoted.bundle_key)
        registered = await workflow.execute_activity_method(
            RegistryActivities.register_version,
            RegisterVersionInput(
                content_hash=inp.content_hash,
                bundle_key=promoted.bundle_key,
                size=promoted.size,
                signature=inp.signature,
                signer_key_id=verified.signer_key_id,
                verified_at=verified.verified_at,
                manifest=inspected.manifest,
                workflow_id=info.workflow_id,
                artifact_key=compiled.artifact_key,
                engine_fingerprint=compiled.engine_fingerprint,
                artifact_sha256=compiled.sha256,
                artifact_size=compiled.size,
                claim_namespace=claim,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        return PublishResult(
            name=inspected.name,
            version=inspected.version,
            publisher=inspected.publisher,
            content_hash=inp.content_hash,
            bundle_key=promoted.bundle_key,
            signer_key_id=verified.signer_key_id,
            verified_at=verified.verified_at,
            artifact_key=compiled.artifact_key,
            engine_fingerprint=compiled.engine_fingerprint,
            workflow_id=info.workflow_id,
            claimed_namespace=registered.claimed_namespace,
        )

    async def _discard(self, keys: list[str]) -> None:
        try:
            await workflow.execute_activity_method(
                BundleActivities.discard_blobs,
                DiscardBlobsInput(keys=sorted(set(keys))),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            # A malformed staging key cannot be deleted (nor was anything stored under it): report, go on.
            workflow.logger.warning("discard_failed", extra={"error": failure_code(err)[0]})
