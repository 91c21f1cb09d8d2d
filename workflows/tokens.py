"""CreateTokenWorkflow: store an API token (hash only) and audit its creation.

Invariants:
* the bearer token never enters this workflow: the input carries its sha256 hex only;
* one workflow per token id (`token/<id>`), and the store activity is idempotent on that id, so a
  retried start or a replayed activity never creates a second row;
* the audit row records who created which scopes for which tenant, never the hash.

Compensation: none needed; the only write is a single idempotent insert, and a failure before it
leaves no row.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from schema.payloads.audit import AuditInput, AuditResult
    from schema.payloads.tokens import (
        CREATE_TOKEN_WORKFLOW,
        CreateTokenInput,
        CreateTokenResult,
        StoreTokenInput,
        StoreTokenResult,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=CREATE_TOKEN_WORKFLOW)
class CreateTokenWorkflow:
    @workflow.run
    async def run(self, inp: CreateTokenInput) -> CreateTokenResult:
        info = workflow.info()
        try:
            stored = await workflow.execute_activity(
                "store_api_token",
                StoreTokenInput(
                    token_id=inp.token_id,
                    token_hash=inp.token_hash,
                    scopes=inp.scopes,
                    tenant_id=inp.tenant_id,
                    name=inp.name,
                    expires_at=inp.expires_at,
                ),
                result_type=StoreTokenResult,
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            # Fail only with ApplicationError (STYLE.md 4), keeping the activity's error code as type.
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc
            raise
        after = {
            "token_id": inp.token_id,
            "scopes": sorted(inp.scopes),
            "name": inp.name,
            "expires_at": inp.expires_at.isoformat() if inp.expires_at else None,
        }
        await workflow.execute_activity(
            "record_audit",
            AuditInput(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                step="create_token",
                actor=inp.actor,
                action="token.create",
                tenant_id=inp.tenant_id,
                after=after,
            ),
            result_type=AuditResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        return CreateTokenResult(
            token_id=inp.token_id,
            scopes=sorted(inp.scopes),
            tenant_id=inp.tenant_id,
            name=inp.name,
            expires_at=inp.expires_at,
            created=stored.created,
            workflow_id=info.workflow_id,
        )


# What the worker registers for tokens, besides `activities.tokens.token_activities(pool)` and the
# shared `record_audit` activity (activities.audit.AuditActivities).
TOKEN_WORKFLOWS: list[type] = [CreateTokenWorkflow]
