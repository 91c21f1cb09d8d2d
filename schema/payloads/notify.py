"""Cache invalidation for gateways: one Redis pub/sub message per install change."""

from __future__ import annotations

from dataclasses import dataclass

# Message: JSON {"tenant_id", "extension", "install_id", "revision"}; revisions only grow, so a gateway
# drops cached state for the install whenever the revision is newer than what it holds.
INVALIDATE_CHANNEL = "extplane:invalidate"


@dataclass(frozen=True, kw_only=True)
class InvalidateInput:
    tenant_id: str
    extension: str
    install_id: str
    revision: int


@dataclass(frozen=True, kw_only=True)
class InvalidateResult:
    receivers: int
