"""How a failed run-now answers (no services: the mapping at the Temporal seam, api/errors.py)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from api.errors import WorkflowFailed, map_temporal_errors
from schema.errors import ErrorCode


async def test_a_failed_scheduled_run_is_a_502_naming_its_workflow() -> None:
    wf_id = "schedule/acme/com.acme.x/nightly/manual/k1"
    cause = ApplicationError(
        "schedule 'nightly' of com.acme.x: the handler answered 500", type="scheduled_run_failed"
    )
    with pytest.raises(WorkflowFailed) as raised:
        async with map_temporal_errors(workflow_id=wf_id):
            raise WorkflowFailureError(cause=cause)
    err = raised.value
    assert (err.code, err.status) == (ErrorCode.SCHEDULED_RUN_FAILED, 502)
    assert err.details == {"workflow_id": wf_id} and "answered 500" in err.message


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.INSTALL_NOT_ACTIVE, 409),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.SCHEDULE_ENDPOINT_DROPPED, 409),
        (ErrorCode.SCHEDULE_LIMIT_EXCEEDED, 422),
    ],
)
def test_the_schedule_codes_of_a_workflow_have_their_status(code: ErrorCode, status: int) -> None:
    assert WorkflowFailed("refused", code=code).status == status
