"""Temporal names shared by the worker, the operator API and the CLI: task queues, workflow ids,
search attributes. Workflow ids are business keys (ARCHITECTURE.md decision 5), so a retried request
maps onto the same workflow and concurrent operations on one install serialize.
"""

from __future__ import annotations

from enum import StrEnum

NAMESPACE = "default"

# Control-plane workflows and registry activities.
CONTROL_TASK_QUEUE = "extplane-control"
# CPU-heavy activities (component precompile) get their own queue so they never starve the others.
COMPILE_TASK_QUEUE = "extplane-compile"


class SearchAttribute(StrEnum):
    """Custom search attributes registered on the namespace by `extctl dev up` (all Keyword)."""

    TENANT_ID = "TenantId"
    EXTENSION_NAME = "ExtensionName"
    EXTENSION_VERSION = "ExtensionVersion"
    CONTENT_HASH = "ContentHash"
    OPERATION = "Operation"
    ACTOR = "Actor"
    # RolloutWorkflow only: its schema.payloads.rollout.RolloutPhase.
    ROLLOUT_STATE = "RolloutState"


def _hex(content_hash: str) -> str:
    return content_hash.removeprefix("sha256:")


def publish_workflow_id(content_hash: str) -> str:
    return f"publish/{_hex(content_hash)}"


def sign_verify_workflow_id(content_hash: str) -> str:
    return f"sign-verify/{_hex(content_hash)}"


def install_workflow_id(tenant_id: str, extension: str) -> str:
    return f"install/{tenant_id}/{extension}"


def revoke_key_workflow_id(key_id: str) -> str:
    return f"revoke-key/{key_id}"


def rotate_master_key_workflow_id(target_version: int) -> str:
    return f"rotate-master-key/{target_version}"


def token_workflow_id(token_id: str) -> str:
    return f"token/{token_id}"


def token_revoke_workflow_id(token_id: str) -> str:
    return f"token-revoke/{token_id}"


def trust_key_workflow_id(key_id: str) -> str:
    return f"trust-add/{key_id}"


def register_namespace_workflow_id(prefix: str) -> str:
    return f"namespace-add/{prefix}"


def remove_namespace_workflow_id(prefix: str) -> str:
    return f"namespace-rm/{prefix}"


class WorkflowType(StrEnum):
    """Registered workflow type names: the API and CLI start workflows by these names."""

    PUBLISH = "Publish"
    SIGN_VERIFY = "SignVerify"
    ADD_TRUST_KEY = "AddTrustKey"
    REVOKE_KEY = "RevokeKey"
    INSTALL = "Install"
    INSTALL_CHANGE = "InstallChange"
    INSTALL_QUARANTINE = "InstallQuarantine"
    ROTATE_MASTER_KEY = "RotateMasterKey"
    REGISTER_NAMESPACE = "RegisterNamespace"
    REMOVE_NAMESPACE = "RemoveNamespace"
    ROLLOUT = "Rollout"
    SCHEDULED_RUN = "ScheduledRun"
    SCHEDULE_CONTROL = "ScheduleControl"


# Update of the Install entity workflow: InstallRequest -> InstallChangeResult.
INSTALL_APPLY_UPDATE = "apply"
# Query of the Install entity workflow: -> InstallState.
INSTALL_STATE_QUERY = "state"

# The Temporal Schedule that starts RotateMasterKeyWorkflow periodically.
ROTATION_SCHEDULE_ID = "rotate-master-key"


def manual_rotation_workflow_id(control_task_queue: str) -> str:
    """`rotate-master-key/manual` for the deployment's control queue (scheduled runs are
    `rotate-master-key/scheduled-...`). Another control queue in the same namespace is another control
    plane (its own registry and keyring), so its rotation must not attach to this one's: the queue then
    joins the id."""
    base = f"{ROTATION_SCHEDULE_ID}/manual"
    return base if control_task_queue == CONTROL_TASK_QUEUE else f"{base}/{control_task_queue}"


def compile_task_queue_for(control_task_queue: str) -> str:
    """The compile queue paired with a control queue (tests run both under a uuid prefix)."""
    if control_task_queue == CONTROL_TASK_QUEUE:
        return COMPILE_TASK_QUEUE
    return f"{control_task_queue}-compile"


def install_change_workflow_id(tenant_id: str, extension: str, request_id: str) -> str:
    """Child workflow of one install change; the request id makes a retried request the same child."""
    return f"install/{tenant_id}/{extension}/change/{request_id}"


def install_quarantine_workflow_id(tenant_id: str, extension: str, key_id: str, install_id: str) -> str:
    """Child of RevokeKey quarantining one install: one per (revoked key, install), so a second run of
    the revocation finds it and quarantines nothing twice. Under `install/<tenant>/<extension>/` like
    the install's other changes."""
    return f"install/{tenant_id}/{extension}/quarantine/{key_id}/{install_id}"


def rollout_workflow_id(rollout_id: str) -> str:
    return f"rollout/{rollout_id}"


# Updates of RolloutWorkflow: RolloutControl -> RolloutStatus; query -> RolloutStatus.
ROLLOUT_PAUSE_UPDATE = "pause"
ROLLOUT_RESUME_UPDATE = "resume"
ROLLOUT_ABORT_UPDATE = "abort"
ROLLOUT_STATUS_QUERY = "status"


def install_schedule_id(tenant_id: str, extension: str, schedule: str) -> str:
    """The Temporal Schedule of one manifest schedule of one install. Its runs are workflows
    `<this>/run-<timestamp>` (Temporal appends the time); a run-now is `<this>/manual/<request id>`."""
    return f"schedule/{tenant_id}/{extension}/{schedule}"


def scheduled_run_workflow_id(tenant_id: str, extension: str, schedule: str) -> str:
    """The workflow id a Schedule's action gives; Temporal appends `-<scheduled time>` per run."""
    return f"{install_schedule_id(tenant_id, extension, schedule)}/run"


def manual_run_workflow_id(tenant_id: str, extension: str, schedule: str, request_id: str) -> str:
    return f"{install_schedule_id(tenant_id, extension, schedule)}/manual/{request_id}"


def schedule_control_workflow_id(tenant_id: str, extension: str, schedule: str, request_id: str) -> str:
    return f"{install_schedule_id(tenant_id, extension, schedule)}/control/{request_id}"
