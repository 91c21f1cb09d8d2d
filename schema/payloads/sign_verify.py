"""Signature verification of a bundle against the trust policy (table trust_keys).

Runs as a child of PublishWorkflow (id `sign_verify_workflow_id(content_hash)`); RevokeKeyWorkflow
re-verifies through the same activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class SignVerifyInput:
    content_hash: str
    name: str
    version: str
    publisher: str
    # The JSON signature document (bundles.signing), as text.
    signature: str
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class SignVerifyResult:
    signer_key_id: str
    verified_at: datetime


@dataclass(frozen=True, kw_only=True)
class VerifySignatureInput:
    content_hash: str
    name: str
    version: str
    publisher: str
    signature: str


@dataclass(frozen=True, kw_only=True)
class VerifySignatureResult:
    signer_key_id: str
    verified_at: datetime
