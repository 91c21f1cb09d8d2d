"""Trust policy changes: add a signing key, revoke one (and quarantine what it signed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schema.payloads.common import VersionRef


@dataclass(frozen=True, kw_only=True)
class AddTrustKeyInput:
    """Start `WorkflowType.ADD_TRUST_KEY` with id `trust_key_workflow_id(key_id)`.

    `key_id` is "ed25519:" + hex(sha256(raw public key))[:32] (what `extctl keys generate` prints);
    the activity recomputes it from the PEM and refuses a mismatch.
    """

    key_id: str
    publisher: str
    public_key_pem: str
    expires_at: datetime | None = None
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class AddTrustKeyResult:
    key_id: str
    publisher: str
    # False when the same key was already trusted for the same publisher (idempotent).
    added: bool


@dataclass(frozen=True, kw_only=True)
class RevokeKeyInput:
    """Start `WorkflowType.REVOKE_KEY` with id `revoke_key_workflow_id(key_id)`."""

    key_id: str
    reason: str = ""
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class QuarantinedInstall:
    install_id: str
    tenant_id: str
    extension: str
    revision: int


@dataclass(frozen=True, kw_only=True)
class QuarantineInstallInput:
    """Input of `WorkflowType.INSTALL_QUARANTINE`, the child of RevokeKey for one install it quarantined
    (id `install_quarantine_workflow_id`): the registry change is already made; the child tells the
    gateways and records the audit row, under the install's TenantId."""

    install_id: str
    tenant_id: str
    extension: str
    revision: int
    version: str
    content_hash: str
    key_id: str
    # Why the bundle no longer verifies (an ErrorCode value, e.g. key_revoked).
    reason: str = ""
    actor: str = "system"
    # The RevokeKey workflow that quarantined it.
    revoke_workflow_id: str = ""


@dataclass(frozen=True, kw_only=True)
class RevokeKeyResult:
    key_id: str
    revoked_versions: list[VersionRef] = field(default_factory=list)
    quarantined_installs: list[QuarantinedInstall] = field(default_factory=list)
    # True when the key had been revoked before this run (the re-verification still runs).
    already_revoked: bool = False


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MarkKeyRevokedInput:
    key_id: str
    reason: str
    revoked_at: datetime


@dataclass(frozen=True, kw_only=True)
class MarkKeyRevokedResult:
    key_id: str
    publisher: str
    already_revoked: bool


@dataclass(frozen=True, kw_only=True)
class SignedBundle:
    content_hash: str
    name: str
    version: str
    publisher: str
    signature: str
    status: str = "verified"


@dataclass(frozen=True, kw_only=True)
class ListSignedInput:
    key_id: str


@dataclass(frozen=True, kw_only=True)
class ListSignedResult:
    bundles: list[SignedBundle] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RevokeVersionInput:
    content_hash: str
    revoked_at: datetime
    workflow_id: str


@dataclass(frozen=True, kw_only=True)
class RevokeVersionResult:
    versions: list[VersionRef] = field(default_factory=list)
    quarantined: list[QuarantinedInstall] = field(default_factory=list)
