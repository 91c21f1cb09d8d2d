"""HTTP error mapping of the operator API and the gateway: every error is
`{"error": <code>, "message": ..., "request_id": ...}` with the status of its code.

    ExtplaneError (core.errors)          -> its class status (InvalidInput 400, NotFound 404, ...)
    └── WorkflowFailed (here)            -> a workflow/update failed with ApplicationError(type=<code>):
                                            the status of that code (CODE_STATUS), 500 if unknown
    Temporal RPC unreachable / timeout   -> 503 control_plane_unavailable (`map_temporal_errors`)
    RequestValidationError (FastAPI)     -> 400 invalid_request
    HTTPException (routing: 404, 405)    -> its status, code not_found / invalid_request; a 405's
                                            `Allow` lists every method routed for the path

Temporal exceptions are translated once, at the seam (`map_temporal_errors`), so routes never catch
temporalio types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.errors import ExtplaneError, NotFound, Unavailable
from schema.errors import ErrorCode

log = structlog.get_logger(__name__)

_CODES = {c.value for c in ErrorCode}

CODE_STATUS: dict[str, int] = {
    **dict.fromkeys(
        (
            ErrorCode.INVALID_MANIFEST,
            ErrorCode.INVALID_BUNDLE,
            ErrorCode.UNSAFE_BUNDLE,
            ErrorCode.HASH_MISMATCH,
            ErrorCode.INVALID_REQUEST,
            ErrorCode.INVALID_CONFIG,
            ErrorCode.SIGNATURE_INVALID,
            ErrorCode.UNTRUSTED_KEY,
            ErrorCode.KEY_REVOKED,
            ErrorCode.KEY_EXPIRED,
            ErrorCode.MODULE_REJECTED,
        ),
        400,
    ),
    ErrorCode.NAMESPACE_OWNED: 403,
    ErrorCode.NAMESPACE_UNREGISTERED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOKEN_NOT_FOUND: 404,
    ErrorCode.VERSION_EXISTS: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.VERSION_NOT_INSTALLABLE: 409,
    ErrorCode.CONSENT_REQUIRED: 409,
    ErrorCode.VERSION_NOT_IN_HISTORY: 409,
    ErrorCode.SCHEDULE_ENDPOINT_DROPPED: 409,
    ErrorCode.INSTALL_NOT_ACTIVE: 409,
    ErrorCode.SCHEDULE_LIMIT_EXCEEDED: 422,
    # The guest of a run-now failed: an upstream's failure, like a gateway's 502 (the API worked).
    ErrorCode.SCHEDULED_RUN_FAILED: 502,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.CONTROL_PLANE_UNAVAILABLE: 503,
    ErrorCode.REGISTRY_UNAVAILABLE: 503,
}


class WorkflowFailed(ExtplaneError):
    """A control-plane workflow (or update) failed; `code` is the ApplicationError type it raised."""

    default_code = ErrorCode.WORKFLOW_FAILED

    @property
    def status(self) -> int:
        return CODE_STATUS.get(self.code.value, 500)


def control_plane_unavailable(message: str, *, workflow_id: str = "") -> Unavailable:
    details = {"workflow_id": workflow_id} if workflow_id else None
    return Unavailable(message, code=ErrorCode.CONTROL_PLANE_UNAVAILABLE, details=details)


def _application_error(exc: BaseException | None) -> ApplicationError | None:
    """The outermost ApplicationError whose type is one of our codes: the workflow's own verdict
    comes before the activity error it wraps."""
    for _ in range(16):
        if exc is None:
            return None
        if isinstance(exc, ApplicationError) and exc.type is not None and exc.type in _CODES:
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def workflow_failed(exc: BaseException, *, workflow_id: str = "") -> WorkflowFailed:
    app_err = _application_error(getattr(exc, "cause", None))
    details: dict[str, Any] = {"workflow_id": workflow_id} if workflow_id else {}
    if app_err is None:
        cause = getattr(exc, "cause", None)
        message = str(cause or exc) or "workflow failed"
        return WorkflowFailed(message, details=details)
    return WorkflowFailed(
        app_err.message, code=ErrorCode(app_err.type or ErrorCode.WORKFLOW_FAILED), details=details
    )


@asynccontextmanager
async def map_temporal_errors(*, workflow_id: str = "") -> AsyncIterator[None]:
    """Translate temporalio exceptions into ExtplaneErrors at the seam."""
    try:
        yield
    except (WorkflowFailureError, WorkflowUpdateFailedError) as exc:
        raise workflow_failed(exc, workflow_id=workflow_id) from exc
    except (RPCTimeoutOrCancelledError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise control_plane_unavailable(
            f"temporal did not answer in time: {exc}", workflow_id=workflow_id
        ) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no workflow {workflow_id}" if workflow_id else exc.message) from exc
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise control_plane_unavailable(
                f"temporal unavailable: {exc.message}", workflow_id=workflow_id
            ) from exc
        raise


class ErrorBody(BaseModel):
    """The JSON body of every error response (`_body`), as the OpenAPI documents describe it."""

    error: ErrorCode = Field(description="stable error code (schema.errors.ErrorCode)")
    message: str
    request_id: str
    details: dict[str, Any] | None = Field(default=None, description="present when there is context")


def _body(request: Request, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": code,
        "message": message,
        "request_id": getattr(request.state, "request_id", ""),
    }
    if details:
        body["details"] = details
    return body


async def _extplane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExtplaneError)
    status = exc.status if isinstance(exc, WorkflowFailed) else exc.http_status
    if status >= 500:
        log.warning("request_failed", code=exc.code.value, status=status, error=exc.message)
    return JSONResponse(_body(request, exc.code.value, exc.message, exc.details), status_code=status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return JSONResponse(
        _body(request, ErrorCode.INVALID_REQUEST.value, "; ".join(parts) or "invalid request"),
        status_code=400,
    )


# What a 405's `Allow` may list; Starlette's HEAD for GET routes comes with them.
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _allowed_methods(request: Request) -> str:
    """Every method the app routes for the request's path. Starlette answers 405 from the first route
    whose path matched, and FastAPI makes one route per method, so its `Allow` named only that route's
    method (`DELETE` for a path that also takes `GET`). Each method is probed against the app's
    routes with a scope of its own (the request's scope is left as it is)."""
    routes = request.app.router.routes
    allowed = []
    for method in _METHODS:
        probe = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
            "headers": [],
        }
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request) or (headers or {}).get("Allow", "")}
    code = ErrorCode.NOT_FOUND.value if exc.status_code == 404 else ErrorCode.INVALID_REQUEST.value
    if exc.status_code == 401:
        code = ErrorCode.UNAUTHENTICATED.value
    elif exc.status_code == 403:
        code = ErrorCode.FORBIDDEN.value
    elif exc.status_code >= 500:
        code = ErrorCode.INTERNAL.value
    return JSONResponse(_body(request, code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ExtplaneError, _extplane_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
