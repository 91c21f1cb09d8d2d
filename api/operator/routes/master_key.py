"""`POST /v1/master-key/rotate`: re-wrap every install data key under the newest master key now.

The same RotateMasterKeyWorkflow the Temporal Schedule `rotate-master-key` starts (its runs are named
`rotate-master-key/scheduled-<time>`), under the fixed id of `manual_rotation_workflow_id`: a second
trigger while one runs attaches to it instead of starting another. The keyring is the worker's
(`EXT_MASTER_KEYS`), so the target version is whatever the worker reads as newest.

The master key protects every tenant's secrets, so only a global token with `admin` may rotate it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import ADMIN, PrincipalDep
from api.operator import control
from api.operator.deps import SettingsDep, TemporalDep
from api.operator.params import CheckParams
from api.operator.routes.bundles import OperationAccepted
from schema.payloads.rotation import RotateMasterKeyInput, RotateMasterKeyResult
from schema.temporal import WorkflowType, manual_rotation_workflow_id

router = APIRouter(tags=["master-key"], dependencies=[CheckParams])


class RotateOut(BaseModel):
    target_version: int
    rewrapped: int
    workflow_id: str
    ui_url: str


@router.post(
    "/master-key/rotate",
    response_model=RotateOut,
    responses={202: {"model": OperationAccepted}},
)
async def rotate_master_key(
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    wait: Annotated[bool, Query(description="wait for the rotation's result")] = True,
) -> RotateOut | JSONResponse:
    """Run RotateMasterKey now (global `admin` only); 202 with the operation while it still runs."""
    principal.require(ADMIN)
    principal.require_global("master-key rotation")
    workflow_id = manual_rotation_workflow_id(settings.control_task_queue)
    started = await control.start(
        client,
        settings,
        WorkflowType.ROTATE_MASTER_KEY.value,
        RotateMasterKeyInput(actor=principal.actor),
        workflow_id=workflow_id,
        result_type=RotateMasterKeyResult,
        attributes=control.search_attributes(OPERATION="rotate_master_key", ACTOR=principal.actor),
    )
    result = None
    if wait:
        result = await control.wait_result(
            started.handle, RotateMasterKeyResult, timeout=settings.wait_seconds
        )
    if result is None:
        # A large registry can outlast the API's wait: that is progress, not an outage.
        body = OperationAccepted(
            operation_id=workflow_id, status="running", ui_url=control.ui_url(settings, workflow_id)
        )
        return JSONResponse(body.model_dump(), status_code=202)
    return RotateOut(
        target_version=result.target_version,
        rewrapped=result.rewrapped,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )
