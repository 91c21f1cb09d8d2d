"""Namespace ownership workflows: RegisterNamespaceWorkflow and RemoveNamespaceWorkflow
(`extctl namespaces add|rm`, `PUT|DELETE /v1/namespaces/{prefix}`).

RegisterNamespaceWorkflow — id `namespace-add/<prefix>`. Invariants: a prefix belongs to one
publisher at a time (another publisher's prefix is refused with `conflict`: remove it first); the same
publisher again is a no-op (a namespace claimed by a first publish becomes registered); names already
published under the prefix by other publishers keep their owner. Compensation: none (one idempotent
upsert), audited either way.

RemoveNamespaceWorkflow — id `namespace-rm/<prefix>`. Invariants: removing frees the prefix for new
names only (published names keep their owner); removing an unknown prefix is an audited no-op.
Compensation: none.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.namespaces import NamespaceActivities
    from schema.payloads.namespaces import (
        RegisterNamespaceInput,
        RegisterNamespaceResult,
        RemoveNamespaceInput,
        RemoveNamespaceResult,
    )
    from schema.temporal import WorkflowType
    from workflows._common import RETRY, SHORT, audit, fail, failure_code, upsert


@workflow.defn(name=WorkflowType.REGISTER_NAMESPACE)
class RegisterNamespaceWorkflow:
    @workflow.run
    async def run(self, inp: RegisterNamespaceInput) -> RegisterNamespaceResult:
        upsert(operation="namespace_add", actor=inp.actor)
        try:
            result = await workflow.execute_activity_method(
                NamespaceActivities.register_namespace, inp, start_to_close_timeout=SHORT, retry_policy=RETRY
            )
        except ActivityError as err:
            code, message = failure_code(err)
            await audit(
                "rejected",
                "namespace_rejected",
                actor=inp.actor,
                after={"prefix": inp.prefix, "publisher": inp.publisher, "error": code},
            )
            raise fail(code, message) from None
        await audit(
            "registered",
            "namespace_registered" if result.added else "namespace_noop",
            actor=inp.actor,
            after={"prefix": inp.prefix, "publisher": inp.publisher},
        )
        return RegisterNamespaceResult(
            prefix=result.prefix,
            publisher=result.publisher,
            added=result.added,
            workflow_id=workflow.info().workflow_id,
        )


@workflow.defn(name=WorkflowType.REMOVE_NAMESPACE)
class RemoveNamespaceWorkflow:
    @workflow.run
    async def run(self, inp: RemoveNamespaceInput) -> RemoveNamespaceResult:
        upsert(operation="namespace_rm", actor=inp.actor)
        try:
            result = await workflow.execute_activity_method(
                NamespaceActivities.remove_namespace, inp, start_to_close_timeout=SHORT, retry_policy=RETRY
            )
        except ActivityError as err:
            raise fail(*failure_code(err)) from None
        await audit(
            "removed",
            "namespace_removed" if result.removed else "namespace_noop",
            actor=inp.actor,
            before={"prefix": inp.prefix, "publisher": result.publisher} if result.removed else None,
            after={"prefix": inp.prefix, "removed": result.removed},
        )
        return RemoveNamespaceResult(
            prefix=result.prefix,
            publisher=result.publisher,
            removed=result.removed,
            workflow_id=workflow.info().workflow_id,
        )
