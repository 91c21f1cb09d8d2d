"""What every extplane workflow shares: activity options, search attributes, audit, failure codes.

Deterministic helpers only (no I/O): they run inside workflow code.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from schema.errors import ErrorCode
    from schema.payloads.audit import AuditInput
    from schema.temporal import SearchAttribute

# Transient failures (Postgres, Redis or the blob store briefly down) are retried with backoff for
# several minutes; domain failures are non-retryable ApplicationErrors and stop at once.
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)
# Registry, Redis and blob operations take milliseconds: a short start-to-close lets a retry start soon
# after a worker dies mid-activity.
SHORT = timedelta(seconds=15)

TENANT_ID = SearchAttributeKey.for_keyword(SearchAttribute.TENANT_ID.value)
EXTENSION_NAME = SearchAttributeKey.for_keyword(SearchAttribute.EXTENSION_NAME.value)
EXTENSION_VERSION = SearchAttributeKey.for_keyword(SearchAttribute.EXTENSION_VERSION.value)
CONTENT_HASH = SearchAttributeKey.for_keyword(SearchAttribute.CONTENT_HASH.value)
OPERATION = SearchAttributeKey.for_keyword(SearchAttribute.OPERATION.value)
ACTOR = SearchAttributeKey.for_keyword(SearchAttribute.ACTOR.value)


def upsert(**values: str | None) -> None:
    """Set search attributes by field name (tenant_id, extension_name, extension_version,
    content_hash, operation, actor); empty values are skipped."""
    keys = {
        "tenant_id": TENANT_ID,
        "extension_name": EXTENSION_NAME,
        "extension_version": EXTENSION_VERSION,
        "content_hash": CONTENT_HASH,
        "operation": OPERATION,
        "actor": ACTOR,
    }
    updates = [keys[name].value_set(v) for name, v in sorted(values.items()) if v]
    if updates:
        workflow.upsert_search_attributes(updates)


def search_attributes(**values: str | None) -> TypedSearchAttributes:
    """The same attributes as a value for starting a child workflow."""
    keys = {
        "tenant_id": TENANT_ID,
        "extension_name": EXTENSION_NAME,
        "extension_version": EXTENSION_VERSION,
        "content_hash": CONTENT_HASH,
        "operation": OPERATION,
        "actor": ACTOR,
    }
    return TypedSearchAttributes([SearchAttributePair(keys[n], v) for n, v in sorted(values.items()) if v])


def failure_code(err: BaseException) -> tuple[str, str]:
    """(error code, message) of the first ApplicationError in a failure's cause chain."""
    cur: BaseException | None = err
    while cur is not None:
        if isinstance(cur, ApplicationError) and cur.type:
            return cur.type, cur.message
        cur = cur.cause if isinstance(cur, FailureError) else None
    return ErrorCode.WORKFLOW_FAILED.value, str(
        err.cause if isinstance(err, FailureError) and err.cause else err
    )


def fail(code: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)


async def audit(
    step: str,
    action: str,
    *,
    actor: str,
    tenant_id: str | None = None,
    extension_name: str | None = None,
    version: str | None = None,
    content_hash: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """One audit_events row for this workflow run and step."""
    info = workflow.info()
    await workflow.execute_activity_method(
        AuditActivities.record_audit,
        AuditInput(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            step=step,
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            extension_name=extension_name,
            version=version,
            content_hash=content_hash,
            before=before,
            after=after,
        ),
        start_to_close_timeout=SHORT,
        retry_policy=RETRY,
    )
