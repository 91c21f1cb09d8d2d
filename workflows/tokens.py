"""CreateTokenWorkflow: store an API token (hash only) and audit its creation.
RevokeTokenWorkflow: revoke one, tell gateways, audit it.

Invariants:
* the bearer token never enters this workflow: the input carries its sha256 hex only;
* one workflow per token id (`token/<id>`), and the store activity is idempotent on that id, so a
  retried start or a replayed activity never creates a second row;
* the audit row records who created which scopes for which tenant, never the hash.

Compensation: none needed; the only write is a single idempotent insert, and a failure before it
leaves no row.

RevokeTokenWorkflow invariants:
* one-way: the activity only ever sets revoked_at, and only when it is unset (a second revocation
  keeps the first time and is audited as `changed: false`);
* the token's tenant in the input must be the row's, else token_not_found and nothing changes;
* the invalidation is best effort (a few attempts): a gateway that misses it drops the token within
  its token cache TTL, so Redis being down never blocks or fails a revocation.

Compensation: none; the revocation is the single write and it is never undone.
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
        REVOKE_TOKEN_WORKFLOW,
        CreateTokenInput,
        CreateTokenResult,
        MarkTokenRevokedInput,
        MarkTokenRevokedResult,
        RevokeTokenInput,
        RevokeTokenResult,
        StoreTokenInput,
        StoreTokenResult,
        TokenInvalidateInput,
        TokenInvalidateResult,
    )

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
_TIMEOUT = timedelta(seconds=30)
_NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)


def _reraise(exc: ActivityError) -> None:
    # Fail only with ApplicationError (STYLE.md 4), keeping the activity's error code as type.
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from exc


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
                    identity=inp.identity,
                ),
                result_type=StoreTokenResult,
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            _reraise(exc)
            raise
        after = {
            "token_id": inp.token_id,
            "scopes": sorted(inp.scopes),
            "name": inp.name,
            "expires_at": inp.expires_at.isoformat() if inp.expires_at else None,
        }
        if inp.identity:  # absent from histories recorded before names existed
            after["identity"] = inp.identity
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
            identity=inp.identity,
            created=stored.created,
            workflow_id=info.workflow_id,
        )


@workflow.defn(name=REVOKE_TOKEN_WORKFLOW)
class RevokeTokenWorkflow:
    @workflow.run
    async def run(self, inp: RevokeTokenInput) -> RevokeTokenResult:
        info = workflow.info()
        try:
            marked = await workflow.execute_activity(
                "mark_api_token_revoked",
                MarkTokenRevokedInput(token_id=inp.token_id, tenant_id=inp.tenant_id),
                result_type=MarkTokenRevokedResult,
                start_to_close_timeout=_TIMEOUT,
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            _reraise(exc)
            raise
        notified = 0
        try:
            sent = await workflow.execute_activity(
                "publish_token_invalidation",
                TokenInvalidateInput(token_id=inp.token_id),
                result_type=TokenInvalidateResult,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_NOTIFY_RETRY,
            )
            notified = sent.receivers
        except ActivityError:
            # The cache TTL bounds what a missed message costs; the revocation itself has happened.
            workflow.logger.warning("token invalidation not published; gateways drop it within their TTL")
        await workflow.execute_activity(
            "record_audit",
            AuditInput(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                step="revoke_token",
                actor=inp.actor,
                action="token.revoke",
                tenant_id=inp.tenant_id,
                before={"revoked_at": None} if marked.changed else None,
                after={
                    "token_id": inp.token_id,
                    "identity": marked.identity or f"token:{inp.token_id}",
                    "revoked_at": marked.revoked_at.isoformat(),
                    "changed": marked.changed,
                    "reason": inp.reason,
                },
            ),
            result_type=AuditResult,
            start_to_close_timeout=_TIMEOUT,
            retry_policy=_RETRY,
        )
        return RevokeTokenResult(
            token_id=inp.token_id,
            tenant_id=inp.tenant_id,
            identity=marked.identity,
            revoked_at=marked.revoked_at,
            changed=marked.changed,
            notified=notified,
            workflow_id=info.workflow_id,
        )


# What the worker registers for tokens, besides `activities.tokens.token_activities(pool, redis)` and
# the shared `record_audit` activity (activities.audit.AuditActivities).
TOKEN_WORKFLOWS: list[type] = [CreateTokenWorkflow, RevokeTokenWorkflow]
