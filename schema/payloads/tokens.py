"""API tokens: created by a workflow so that even token creation is an audited state change.

Start `CREATE_TOKEN_WORKFLOW` with `CreateTokenInput` on CONTROL_TASK_QUEUE, id
`schema.temporal.token_workflow_id(token_id)`. The operator API generates the bearer token and sends
only its sha256 hex (`token_hash`), so the token itself never lands in workflow history; the API
returns it to the caller exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Registered workflow type name (schema.temporal.WorkflowType does not list it yet).
CREATE_TOKEN_WORKFLOW = "CreateToken"

# Every scope a token can carry (CONTRACT.md "HTTP"); `admin` implies all the others.
SCOPES = (
    "ext:read",
    "ext:write",
    "ext:debug",
    "registry:publish",
    "installs:manage",
    "trust:manage",
    "admin",
)


@dataclass(frozen=True, kw_only=True)
class CreateTokenInput:
    # uuid of the api_tokens row (also the workflow id suffix).
    token_id: str
    # Lowercase hex sha256 of the bearer token.
    token_hash: str
    scopes: list[str] = field(default_factory=list)
    # None: a global token.
    tenant_id: str | None = None
    name: str = ""
    expires_at: datetime | None = None
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class CreateTokenResult:
    token_id: str
    scopes: list[str] = field(default_factory=list)
    tenant_id: str | None = None
    name: str = ""
    expires_at: datetime | None = None
    # False when the row already existed (an activity retry or a repeated start).
    created: bool = True
    workflow_id: str = ""


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoreTokenInput:
    token_id: str
    token_hash: str
    scopes: list[str] = field(default_factory=list)
    tenant_id: str | None = None
    name: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class StoreTokenResult:
    token_id: str
    created: bool
