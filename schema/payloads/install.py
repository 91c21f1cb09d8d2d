"""Install lifecycle of one extension in one tenant.

One entity workflow per (tenant, extension), id `install_workflow_id(tenant, extension)`, type
`WorkflowType.INSTALL`, task queue CONTROL_TASK_QUEUE, input `InstallInput`. Every change is the
Update `INSTALL_APPLY_UPDATE` with an `InstallRequest` and returns an `InstallChangeResult`; send it with
update-with-start so the entity is started when it is not running:

    start = WithStartWorkflowOperation(WorkflowType.INSTALL, InstallInput(tenant_id=t, extension=e),
        id=install_workflow_id(t, e), task_queue=CONTROL_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    result = await client.execute_update_with_start_workflow(INSTALL_APPLY_UPDATE,
        InstallRequest(request_id=..., operation=InstallOperation.UPGRADE, version="1.2.0"),
        start_workflow_operation=start, result_type=InstallChangeResult)

A failed change raises WorkflowUpdateFailedError whose cause is an ApplicationError with `type` an
ErrorCode value (not_found, version_not_installable, invalid_config, invalid_request, conflict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schema.install_rules import GrantSet
from schema.payloads.secrets import SealedSecrets


class InstallOperation(StrEnum):
    INSTALL = "install"
    UPGRADE = "upgrade"
    ROLLBACK = "rollback"
    ENABLE = "enable"
    DISABLE = "disable"
    UNINSTALL = "uninstall"
    SET_LIMITS = "set_limits"
    SET_CONFIG = "set_config"
    SET_SECRETS = "set_secrets"
    SET_DEBUG = "set_debug"


@dataclass(frozen=True, kw_only=True)
class InstallRequest:
    """One change. `request_id` is the idempotency key: the same id again returns the first result
    (the API derives it from an Idempotency-Key header, or a fresh uuid). `fingerprint` binds the id to
    what it first asked for: part name -> digest (api/operator/fingerprint.py); the same id with a
    different fingerprint is refused with `idempotency_key_reused`. An empty fingerprint (a client that
    sends none) is never compared.

    Fields by operation: install/upgrade: `version` (required); rollback: `version` optional (default:
    the previous version in install_history); install: optional `config` and `secrets`; set_config:
    `config` (merged into the current config when `config_merge`, else replacing it); set_secrets:
    `secrets`; install/upgrade/rollback: `deny` (capabilities and egress hosts not to grant), and for
    upgrade/rollback `accept` (consent to exactly what the target adds; schema.install_rules);
    set_limits: `rate_limit_rps` and `rate_limit_burst` (None clears
    to the gateway default); set_debug: `debug_enabled` (required; the operator flag that opens the
    debug stream of an install whose manifest does not grant `cap:debug.logs`).
    """

    request_id: str
    operation: InstallOperation
    actor: str = "system"
    version: str = ""
    config: dict[str, Any] | None = None
    secrets: SealedSecrets | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    debug_enabled: bool | None = None
    fingerprint: dict[str, str] = field(default_factory=dict)
    accept: GrantSet | None = None
    deny: GrantSet | None = None
    # False (replace) is what requests of older clients and histories meant.
    config_merge: bool = False
    # upgrade/rollback: schedules the operator agrees to lose because the target no longer declares
    # the endpoint they call (else schedule_endpoint_dropped; schema.schedules).
    drop_schedules: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class InstallChangeResult:
    request_id: str
    operation: InstallOperation
    tenant_id: str
    extension: str
    # Empty after an uninstall of something that was not installed.
    install_id: str = ""
    revision: int = 0
    version: str = ""
    # Content hash of `version` (empty when `version` is): the ContentHash search attribute.
    content_hash: str = ""
    previous_version: str = ""
    # active | disabled | quarantined | uninstalled
    status: str = ""
    config_version: int = 0
    secrets_version: int = 0
    # False when the change was a no-op (install of the installed version, enable of an active install).
    changed: bool = True
    # Id of the child workflow that ran the change (Temporal UI lists it with Operation set).
    workflow_id: str = ""
    # What the install's version requests and what the install is granted after the change.
    requested: GrantSet | None = None
    granted: GrantSet | None = None


@dataclass(frozen=True, kw_only=True)
class InstallState:
    """All state of the entity workflow; carried over continue-as-new."""

    # Results of recent requests by request_id (bounded), for idempotent retries.
    completed: dict[str, InstallChangeResult] = field(default_factory=dict)
    # Request ids in completion order, to evict the oldest.
    order: list[str] = field(default_factory=list)
    changes: int = 0
    # Fingerprints of the remembered request ids that carried one (InstallRequest.fingerprint).
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class InstallInput:
    tenant_id: str
    extension: str
    state: InstallState | None = None
    # The entity continues as new after this many changes (history stays small); tests lower it.
    max_changes_per_run: int = 200


@dataclass(frozen=True, kw_only=True)
class InstallChangeInput:
    """Input of the child workflow that runs one change (`WorkflowType.INSTALL_CHANGE`)."""

    tenant_id: str
    extension: str
    request: InstallRequest


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplyInstallChangeInput:
    """A change without secrets: the registry transaction of install/upgrade/rollback/... ."""

    tenant_id: str
    extension: str
    request_id: str
    operation: InstallOperation
    workflow_id: str
    version: str = ""
    config: dict[str, Any] | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    debug_enabled: bool | None = None
    accept: GrantSet | None = None
    deny: GrantSet | None = None
    config_merge: bool = False
    drop_schedules: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class ApplyInstallChangeResult:
    change: InstallChangeResult
    # Install state before and after, as JSON for the audit row (no secret material).
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    # Schedule names the install's version declared before and after the change: the workflow syncs
    # the install's Temporal Schedules when either is non-empty.
    schedules_before: list[str] = field(default_factory=list)
    schedules_after: list[str] = field(default_factory=list)
