"""The error base of extplane.

    ExtplaneError                  every domain error: a stable `code` (schema.errors.ErrorCode) + message
    ├── InvalidInput               bad input from a user: 400-class, never retried
    ├── NotFound                   a named thing does not exist (or is not visible to the caller)
    ├── Conflict                   the request contradicts current state (version_exists, ...)
    ├── Unauthorized / Forbidden   auth failures at the HTTP edges
    └── Unavailable                a dependency (Postgres, Redis, Temporal, runner) is down: retryable

Layers subclass these (bundles.errors, runner.errors, ...). Messages name what is wrong and never
contain secret material.
"""

from __future__ import annotations

from typing import Any, ClassVar

from schema.errors import ErrorCode


class ExtplaneError(Exception):
    """Base of every domain error. `code` is stable and public; `details` is JSON-safe context."""

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code: ErrorCode = code or self.default_code
        self.details: dict[str, Any] = details or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code.value, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(ExtplaneError):
    default_code = ErrorCode.INVALID_REQUEST
    http_status = 400


class NotFound(ExtplaneError):
    default_code = ErrorCode.NOT_FOUND
    http_status = 404


class Conflict(ExtplaneError):
    default_code = ErrorCode.CONFLICT
    http_status = 409


class Unauthorized(ExtplaneError):
    default_code = ErrorCode.UNAUTHENTICATED
    http_status = 401


class Forbidden(ExtplaneError):
    default_code = ErrorCode.FORBIDDEN
    http_status = 403


class Unavailable(ExtplaneError):
    default_code = ErrorCode.INTERNAL
    http_status = 503
    retryable = True
