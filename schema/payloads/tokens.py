"""API tokens: created and revoked by workflows so that both are audited state changes.

Start `CREATE_TOKEN_WORKFLOW` with `CreateTokenInput` on CONTROL_TASK_QUEUE, id
`schema.temporal.token_workflow_id(token_id)`. The operator API generates the bearer token and sends
only its sha256 hex (`token_hash`), so the token itself never lands in workflow history; the API
returns it to the caller exactly once.

Start `REVOKE_TOKEN_WORKFLOW` with `RevokeTokenInput`, id `schema.temporal.token_revoke_workflow_id`.
Revocation is one-way; the workflow then publishes `{"token_id"}` on `TOKEN_INVALIDATE_CHANNEL` so
gateways drop the token from their caches at once (their cache TTL is the bound when a message is lost).

Identity: a token's `name` (NAME_RE) makes its identity (`identity_of`), the Actor its changes are
recorded under: `alice` for a global token, `acme/alice` for a token of tenant acme. The bootstrap
EXT_ADMIN_TOKEN acts as `bootstrap`; tokens made before names existed act as `token:<id>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# Registered workflow type names (schema.temporal.WorkflowType does not list them yet).
CREATE_TOKEN_WORKFLOW = "CreateToken"
REVOKE_TOKEN_WORKFLOW = "RevokeToken"

# Pub/sub channel of token revocations (a channel of its own: install messages have another shape).
TOKEN_INVALIDATE_CHANNEL = "extplane:invalidate:tokens"

# A token name: lowercase, starts alphanumeric, at most 63 characters. No "/" or ":" so that an
# identity ("name" or "tenant/name") can never be read as another one or as "token:<id>".
NAME_RULE = "1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
BOOTSTRAP_ACTOR = "bootstrap"
# Names no token may take: the identities of the bootstrap token (now and before names existed) and
# of the system default, so an Actor never means two things.
RESERVED_NAMES = frozenset({BOOTSTRAP_ACTOR, "admin", "system"})


def valid_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None and name not in RESERVED_NAMES


def identity_of(tenant_id: str | None, name: str) -> str:
    """The Actor of a named token: `name` when global, `tenant/name` for a tenant's token."""
    return name if tenant_id is None else f"{tenant_id}/{name}"


def default_name(token_id: str) -> str:
    """The name of a token created without one (CONTRACT.md keeps `--name` optional)."""
    return "token-" + token_id.replace("-", "")[:12]


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
    # identity_of(tenant_id, name): the Actor of the new token's own changes ("" before names existed).
    identity: str = ""


@dataclass(frozen=True, kw_only=True)
class CreateTokenResult:
    token_id: str
    scopes: list[str] = field(default_factory=list)
    tenant_id: str | None = None
    name: str = ""
    expires_at: datetime | None = None
    identity: str = ""
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
    identity: str = ""


@dataclass(frozen=True, kw_only=True)
class StoreTokenResult:
    token_id: str
    created: bool


@dataclass(frozen=True, kw_only=True)
class RevokeTokenInput:
    token_id: str
    # The token's tenant as the API read it (None: a global token); the revoke activity matches it, so
    # a workflow started with a wrong tenant revokes nothing.
    tenant_id: str | None = None
    actor: str = "system"
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RevokeTokenResult:
    token_id: str
    tenant_id: str | None = None
    identity: str = ""
    revoked_at: datetime | None = None
    # False when the token was already revoked (revoking twice is a no-op).
    changed: bool = True
    # Gateways that received the invalidation (0 when none listened or Redis was unreachable).
    notified: int = 0
    workflow_id: str = ""


@dataclass(frozen=True, kw_only=True)
class MarkTokenRevokedInput:
    token_id: str
    tenant_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class MarkTokenRevokedResult:
    token_id: str
    revoked_at: datetime
    identity: str = ""
    changed: bool = True


@dataclass(frozen=True, kw_only=True)
class TokenInvalidateInput:
    token_id: str


@dataclass(frozen=True, kw_only=True)
class TokenInvalidateResult:
    receivers: int
