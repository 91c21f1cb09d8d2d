"""Errors of the runner. Every failure of an execution ends as exactly one of these.

    core.errors.ExtplaneError
    └── RunnerError                  base; `http_status` is what `/v1/execute` answers (schema.envelope)
        ├── InvalidEnvelope          400 invalid_request: malformed envelope, unknown capability, too large
        ├── ModuleNotFound           404 module_not_found: no bundle / no dist/main.wasm for the hash
        ├── ModuleRejected           422 module_rejected: hash mismatch, not a component of our world
        ├── RunnerBusy               503 runner_busy: no slot (full, or the tenant's share taken),
        │                            or no thread came free before the deadline: the guest never ran
        ├── CapabilityDenied         a host call the install was not granted (guests see a typed
        │                            `denied`; this class names the event in logs and metrics)
        ├── GuestTrap                500 guest_trap: keeps the wasmtime trap code ("unreachable", ...)
        │   ├── FuelExhausted        500 fuel_exhausted
        │   ├── DeadlineExceeded     504 deadline_exceeded (epoch interrupt)
        │   └── MemoryExhausted      500 memory_exhausted
        └── ResponseTooLarge         500 response_too_large

Component traps reach Python as a bare `WasmtimeError` without a trap code, so `runner._traps`
classifies them by message; nothing escapes the runner unclassified.
"""

from __future__ import annotations

from typing import ClassVar

from core.errors import ExtplaneError
from schema.errors import ErrorCode

__all__ = [
    "CapabilityDenied",
    "DeadlineExceeded",
    "FuelExhausted",
    "GuestTrap",
    "InvalidEnvelope",
    "MemoryExhausted",
    "ModuleNotFound",
    "ModuleRejected",
    "ResponseTooLarge",
    "RunnerBusy",
    "RunnerError",
]


class RunnerError(ExtplaneError):
    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    http_status: ClassVar[int] = 500


class InvalidEnvelope(RunnerError):
    default_code = ErrorCode.INVALID_REQUEST
    http_status = 400


class ModuleNotFound(RunnerError):
    # The gateway maps it to 502 like any load failure.
    default_code = ErrorCode.MODULE_NOT_FOUND
    http_status = 404


class ModuleRejected(RunnerError):
    default_code = ErrorCode.MODULE_REJECTED
    http_status = 422


class RunnerBusy(RunnerError):
    """`reason` (full, tenant_share, queued_past_deadline) labels the runner's shed metric."""

    default_code = ErrorCode.RUNNER_BUSY
    http_status = 503
    retryable = True

    def __init__(self, message: str, *, reason: str = "full") -> None:
        super().__init__(message)
        self.reason = reason


class CapabilityDenied(RunnerError):
    default_code = ErrorCode.FORBIDDEN
    http_status = 403


class GuestTrap(RunnerError):
    """The guest stopped abnormally. `trap_code` names the wasmtime trap (snake_case) when known."""

    default_code = ErrorCode.GUEST_TRAP
    http_status = 500

    def __init__(self, message: str, *, trap_code: str | None = None) -> None:
        super().__init__(message, details={"trap_code": trap_code} if trap_code else None)
        self.trap_code = trap_code


class FuelExhausted(GuestTrap):
    default_code = ErrorCode.FUEL_EXHAUSTED


class DeadlineExceeded(GuestTrap):
    default_code = ErrorCode.DEADLINE_EXCEEDED
    http_status = 504


class MemoryExhausted(GuestTrap):
    default_code = ErrorCode.MEMORY_EXHAUSTED


class ResponseTooLarge(RunnerError):
    default_code = ErrorCode.RESPONSE_TOO_LARGE
    http_status = 500
