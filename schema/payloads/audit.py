"""Audit rows: one per (workflow id, run id, step), written idempotently by an activity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class AuditInput:
    workflow_id: str
    run_id: str
    step: str
    actor: str
    action: str
    tenant_id: str | None = None
    extension_name: str | None = None
    version: str | None = None
    content_hash: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    # False when the row existed already (an activity retry).
    inserted: bool
