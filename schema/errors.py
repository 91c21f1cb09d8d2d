"""Stable error codes: the `error` field of every JSON error body and CLI `--json` failure.

Codes are part of the public contract (CONTRACT.md); add new ones, never rename. Each layer raises its
own exception classes carrying one of these codes (core.errors, runner.errors, ...).
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    # input
    INVALID_MANIFEST = "invalid_manifest"
    INVALID_BUNDLE = "invalid_bundle"
    UNSAFE_BUNDLE = "unsafe_bundle"
    HASH_MISMATCH = "hash_mismatch"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_REQUEST = "invalid_request"
    INVALID_CONFIG = "invalid_config"
    # An Idempotency-Key sent again with another operation or body (422): the first request's key.
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    # signatures and trust
    SIGNATURE_INVALID = "signature_invalid"
    UNTRUSTED_KEY = "untrusted_key"
    KEY_REVOKED = "key_revoked"
    KEY_EXPIRED = "key_expired"
    # the extension name's namespace (or the name itself) belongs to another publisher: 403
    NAMESPACE_OWNED = "namespace_owned"
    # EXT_NAMESPACE_POLICY=strict and no registered namespace covers the new name: 403
    NAMESPACE_UNREGISTERED = "namespace_unregistered"
    # registry
    VERSION_EXISTS = "version_exists"
    NOT_FOUND = "not_found"
    VERSION_NOT_INSTALLABLE = "version_not_installable"
    CONFLICT = "conflict"
    MIGRATION_CHECKSUM_MISMATCH = "migration_checksum_mismatch"
    # auth
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    TENANT_MISMATCH = "tenant_mismatch"
    # an api token id that names no token (or none the caller's tenant holds): 404
    TOKEN_NOT_FOUND = "token_not_found"
    # gateway
    EXTENSION_NOT_AVAILABLE = "extension_not_available"
    ENDPOINT_NOT_FOUND = "endpoint_not_found"
    RATE_LIMITED = "rate_limited"
    RATE_LIMITER_UNAVAILABLE = "rate_limiter_unavailable"
    BAD_GATEWAY = "bad_gateway"
    HANDLER_TIMEOUT = "handler_timeout"
    # the request line and headers exceed EXT_GATEWAY_MAX_HEADER_BYTES: 431, answered by the protocol layer
    REQUEST_HEADER_TOO_LARGE = "request_header_too_large"
    # runner
    RUNNER_BUSY = "runner_busy"
    MODULE_NOT_FOUND = "module_not_found"
    MODULE_REJECTED = "module_rejected"
    GUEST_TRAP = "guest_trap"
    FUEL_EXHAUSTED = "fuel_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    MEMORY_EXHAUSTED = "memory_exhausted"
    RESPONSE_TOO_LARGE = "response_too_large"
    # control plane
    CONTROL_PLANE_UNAVAILABLE = "control_plane_unavailable"
    # Postgres cannot be reached (a registry read on a cache miss, or any control-plane write): 503.
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    WORKFLOW_FAILED = "workflow_failed"
    INTERNAL = "internal"
    # install consent (409): the version asks for capabilities or egress hosts the install has not
    # been granted; `details` holds what it adds. Re-send with exactly those accepted (or denied).
    CONSENT_REQUIRED = "consent_required"
    # rollback --to a version this install never ran (409); `details.version` names it.
    VERSION_NOT_IN_HISTORY = "version_not_in_history"
    # upgrade/rollback to a version that no longer declares an endpoint a schedule of the install
    # calls (409); `details.schedules` names them: re-send with them in drop_schedules.
    SCHEDULE_ENDPOINT_DROPPED = "schedule_endpoint_dropped"
    # a version's schedules break an operator limit: a cron more frequent than the minimum interval,
    # or more schedules in the tenant than allowed (422); `details` names the limit and the value.
    SCHEDULE_LIMIT_EXCEEDED = "schedule_limit_exceeded"
    # pause/resume/run of a schedule whose install is not active (409).
    INSTALL_NOT_ACTIVE = "install_not_active"
    # a scheduled run whose guest answered 5xx or failed (trap, fuel, deadline): the run's workflow
    # fails with it so Temporal UI shows the run red; the next run is not affected.
    SCHEDULED_RUN_FAILED = "scheduled_run_failed"
