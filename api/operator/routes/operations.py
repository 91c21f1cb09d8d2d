"""`GET /v1/operations/{workflow_id}`: status of a control-plane workflow, with its Temporal UI link.

Workflow ids are business keys (`publish/<hex>`, `install/<tenant>/<extension>`, ...), so an operator
can ask about an operation without having kept any id from the response that started it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from api.auth import Principal, PrincipalDep
from api.errors import map_temporal_errors, workflow_failed
from api.operator import control
from api.operator.deps import SettingsDep, TemporalDep
from api.operator.params import CheckParams
from core.errors import Forbidden
from schema.errors import ErrorCode

router = APIRouter(tags=["operations"], dependencies=[CheckParams])


class OperationError(BaseModel):
    error: str
    message: str


class OperationOut(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    started_at: datetime | None
    closed_at: datetime | None
    ui_url: str
    result: Any = None
    error: OperationError | None = None


def _authorize(principal: Principal, workflow_id: str) -> None:
    principal.require("ext:read", "installs:manage", "registry:publish", "trust:manage")
    if principal.tenant_id is None:
        return
    if workflow_id.startswith("publish/") and principal.has("registry:publish"):
        return
    if not workflow_id.startswith(f"install/{principal.tenant_id}/"):
        raise Forbidden(
            f"this token belongs to tenant {principal.tenant_id!r} and sees only its install operations",
            code=ErrorCode.TENANT_MISMATCH,
        )


@router.get("/operations/{workflow_id:path}", response_model=OperationOut)
async def get_operation(
    workflow_id: str, principal: PrincipalDep, client: TemporalDep, settings: SettingsDep
) -> OperationOut:
    _authorize(principal, workflow_id)
    handle = client.get_workflow_handle(workflow_id)
    async with map_temporal_errors(workflow_id=workflow_id):
        desc = await handle.describe(rpc_timeout=control.RPC_TIMEOUT)
    status = desc.status or WorkflowExecutionStatus.RUNNING
    out = OperationOut(
        workflow_id=workflow_id,
        run_id=desc.run_id,
        workflow_type=desc.workflow_type,
        status=status.name.lower(),
        started_at=desc.start_time,
        closed_at=desc.close_time,
        ui_url=control.ui_url(settings, workflow_id),
    )
    run = client.get_workflow_handle(workflow_id, run_id=desc.run_id)
    async with map_temporal_errors(workflow_id=workflow_id):
        if status == WorkflowExecutionStatus.COMPLETED:
            out.result = await run.result()
        elif status == WorkflowExecutionStatus.FAILED:
            try:
                await run.result()
            except WorkflowFailureError as exc:
                err = workflow_failed(exc)
                out.error = OperationError(error=err.code.value, message=err.message)
    return out
