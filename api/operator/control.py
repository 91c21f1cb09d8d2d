"""Starting, updating and awaiting control-plane workflows by name (the API imports no workflow code).

Every start uses the business-key workflow id of schema.temporal and `USE_EXISTING` on conflict, so a
retried request attaches to the running workflow instead of starting a second one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowQueryRejectedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import WorkflowFailed, map_temporal_errors
from api.operator.settings import OperatorSettings
from core.errors import Unavailable
from schema.errors import ErrorCode
from schema.payloads.install import InstallChangeResult, InstallInput, InstallRequest, InstallState
from schema.temporal import (
    INSTALL_APPLY_UPDATE,
    INSTALL_STATE_QUERY,
    SearchAttribute,
    WorkflowType,
    install_workflow_id,
)

T = TypeVar("T")
RPC_TIMEOUT = timedelta(seconds=15)


def ui_url(settings: OperatorSettings, workflow_id: str) -> str:
    """Temporal UI page of a workflow (ids contain '/', so the id is one encoded path segment)."""
    base = settings.temporal_ui_url.rstrip("/")
    return f"{base}/namespaces/{settings.temporal_namespace}/workflows/{quote(workflow_id, safe='')}"


def search_attributes(**values: str | None) -> TypedSearchAttributes:
    """Keyword search attributes by SearchAttribute member name (empty values are left out)."""
    pairs = [
        SearchAttributePair(SearchAttributeKey.for_keyword(SearchAttribute[name].value), value)
        for name, value in values.items()
        if value
    ]
    return TypedSearchAttributes(pairs)


@dataclass(frozen=True, kw_only=True)
class Started:
    handle: WorkflowHandle[Any, Any]
    # True when an earlier, successfully completed run owns this id: its result is the answer.
    earlier: bool = False


async def start(
    client: Client,
    settings: OperatorSettings,
    workflow: str,
    arg: Any,
    *,
    workflow_id: str,
    result_type: type | None = None,
    attributes: TypedSearchAttributes | None = None,
    reuse_failed_only: bool = False,
    reject_duplicate: bool = False,
) -> Started:
    """Start `workflow` (or attach to the running one with that id).

    With `reuse_failed_only`, an id whose last run completed successfully is not started again: the
    caller gets that run's handle (`earlier=True`), e.g. a re-upload of a published bundle. With
    `reject_duplicate`, no id is ever started twice: a closed run, failed or not, is the answer (a
    request id that names a side effect, e.g. a run-now of a schedule, must not repeat it).
    """
    reuse = (
        WorkflowIDReusePolicy.REJECT_DUPLICATE
        if reject_duplicate
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
        if reuse_failed_only
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE
    )
    async with map_temporal_errors(workflow_id=workflow_id):
        try:
            handle = await client.start_workflow(
                workflow,
                arg,
                id=workflow_id,
                task_queue=settings.control_task_queue,
                id_reuse_policy=reuse,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=attributes,
                result_type=result_type,
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            earlier = client.get_workflow_handle(workflow_id, result_type=result_type)
            return Started(handle=earlier, earlier=True)
    return Started(handle=handle)


async def wait_result(handle: WorkflowHandle[Any, Any], result_type: type[T], *, timeout: float) -> T | None:
    """The workflow's result, or None when it is still running after `timeout` seconds.

    The handle must have been made with the same `result_type` (so the payload decodes into it).
    """
    async with map_temporal_errors(workflow_id=handle.id):
        try:
            result = await asyncio.wait_for(handle.result(), timeout)
        except TimeoutError:
            return None
    if not isinstance(result, result_type):
        raise WorkflowFailed(
            f"workflow {handle.id} returned {type(result).__name__}, not {result_type.__name__}"
        )
    return result


async def finished(started: Started, result_type: type[T], settings: OperatorSettings) -> T:
    """The result of a workflow started for a request, waited for up to the API's wait; a workflow
    still running then is 503 control_plane_unavailable (`still_running`) naming it."""
    result = await wait_result(started.handle, result_type, timeout=settings.wait_seconds)
    if result is None:
        raise still_running(started.handle.id)
    return result


async def apply_install_change(
    client: Client, settings: OperatorSettings, tenant_id: str, extension: str, request: InstallRequest
) -> InstallChangeResult:
    """Update-with-start of the install entity workflow (schema.payloads.install); waits at most
    `settings.wait_seconds` for the change's result."""
    workflow_id = install_workflow_id(tenant_id, extension)
    op: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        WorkflowType.INSTALL.value,
        InstallInput(tenant_id=tenant_id, extension=extension),
        id=workflow_id,
        task_queue=settings.control_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search_attributes(TENANT_ID=tenant_id, EXTENSION_NAME=extension),
    )
    async with map_temporal_errors(workflow_id=workflow_id):
        try:
            result: InstallChangeResult = await asyncio.wait_for(
                client.execute_update_with_start_workflow(
                    INSTALL_APPLY_UPDATE,
                    request,
                    start_workflow_operation=op,
                    result_type=InstallChangeResult,
                ),
                settings.wait_seconds,
            )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # Without a worker the update is never accepted (the client turns the cancellation by
            # wait_for into its own error); the same Idempotency-Key retries safely.
            await _settle(op)
            raise still_running(workflow_id) from None
        except Exception:
            await _settle(op)
            raise
    return result


async def install_remembers(client: Client, tenant_id: str, extension: str, request_id: str) -> bool:
    """Whether the running install entity has completed `request_id` (so a retry with that
    Idempotency-Key gets its first answer although the install may be gone since, e.g. uninstalled).

    A closed or never started entity remembers nothing: its next update-with-start begins afresh.
    """
    workflow_id = install_workflow_id(tenant_id, extension)
    handle = client.get_workflow_handle(workflow_id)
    async with map_temporal_errors(workflow_id=workflow_id):
        try:
            state = await handle.query(
                INSTALL_STATE_QUERY,
                result_type=InstallState,
                reject_condition=QueryRejectCondition.NOT_OPEN,
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowQueryRejectedError:
            return False
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return isinstance(state, InstallState) and request_id in state.completed


async def _settle(op: WithStartWorkflowOperation[Any, Any]) -> None:
    """Retrieve the start operation's failed handle future, which nothing else awaits.

    Left alone, asyncio logs "Future exception was never retrieved" from the garbage collector; on
    Python 3.11 formatting that traceback calls ast.parse, which can corrupt an ast.parse running at
    that moment (CPython gh-106905: "AST constructor recursion depth mismatch").
    """
    try:
        await asyncio.wait_for(op.workflow_handle(), 0.1)
    except asyncio.CancelledError:
        # The stored failure may itself be a CancelledError; a cancellation of this task is not ours.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:
        pass  # the failure itself was already handled by the caller


def still_running(workflow_id: str) -> Unavailable:
    """A workflow that did not finish within the API's wait: usually no worker is polling."""
    return Unavailable(
        f"workflow {workflow_id} is still running; follow it at GET /v1/operations/{workflow_id}",
        code=ErrorCode.CONTROL_PLANE_UNAVAILABLE,
        details={"workflow_id": workflow_id},
    )
