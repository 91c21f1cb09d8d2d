"""Errors of the gateway: each one is exactly one tenant-facing status and `error` code (CONTRACT.md).

    core.errors.ExtplaneError
    ├── Unauthorized                    401 unauthenticated       no, malformed, unknown, expired token
    ├── Forbidden                       403 forbidden / tenant_mismatch
    ├── NotFound                        404 extension_not_available / endpoint_not_found
    ├── InvalidInput                    400 invalid_request: path or query beyond the envelope's bounds
    └── GatewayError                    base of the hot-path failures below
        ├── PayloadTooLarge             413 payload_too_large
        ├── RateLimited                 429 rate_limited (+ Retry-After)
        ├── RateLimiterUnavailable      503 rate_limiter_unavailable (the limiter fails closed)
        ├── BadGateway                  502 bad_gateway: runner down, bad answer, guest trap/fuel/memory
        ├── RunnerBusy                  503 runner_busy (+ Retry-After): no runner capacity for the call
        │                               (all slots taken, or the tenant's fair share); the guest never ran
        └── HandlerTimeout              504 handler_timeout: runner deadline or the gateway's own

`outcome` is the execution_log classification of the call that ended with this error.
"""

from __future__ import annotations

from typing import ClassVar

from core.errors import ExtplaneError, Forbidden, InvalidInput, NotFound, Unauthorized
from schema.errors import ErrorCode

__all__ = [
    "BadGateway",
    "Forbidden",
    "GatewayError",
    "HandlerTimeout",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RateLimiterUnavailable",
    "RunnerBusy",
    "Unauthorized",
    "outcome_of",
]


class GatewayError(ExtplaneError):
    outcome: ClassVar[str] = "error"


class PayloadTooLarge(GatewayError):
    default_code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413
    outcome = "policy_denied"


class RateLimited(GatewayError):
    default_code = ErrorCode.RATE_LIMITED
    http_status = 429
    outcome = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiterUnavailable(GatewayError):
    default_code = ErrorCode.RATE_LIMITER_UNAVAILABLE
    http_status = 503
    outcome = "error"
    retryable = True


class BadGateway(GatewayError):
    default_code = ErrorCode.BAD_GATEWAY
    http_status = 502
    outcome = "upstream_error"


class RunnerBusy(GatewayError):
    default_code = ErrorCode.RUNNER_BUSY
    http_status = 503
    outcome = "upstream_error"
    retryable = True
    retry_after_s = 1


class HandlerTimeout(GatewayError):
    default_code = ErrorCode.HANDLER_TIMEOUT
    http_status = 504
    outcome = "timeout"


def outcome_of(error: ExtplaneError) -> str:
    """The execution_log outcome of a call that failed with `error`."""
    if isinstance(error, GatewayError):
        return error.outcome
    if isinstance(error, (Unauthorized, Forbidden, NotFound, InvalidInput)):
        return "policy_denied"
    return "error"
