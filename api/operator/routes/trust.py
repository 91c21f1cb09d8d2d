"""The trust policy: signing keys scoped to a publisher (AddTrustKey / RevokeKey workflows).

Trust is global (it decides what every tenant may install), so it needs a global token with
`trust:manage`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import Principal, PrincipalDep
from api.operator import control
from api.operator.deps import PoolDep, SettingsDep, TemporalDep
from api.operator.fields import DateTimeText, StorableText
from api.operator.params import CheckParams
from core.errors import InvalidInput, NotFound
from registry import read
from schema.payloads.common import VersionRef
from schema.payloads.trust import (
    AddTrustKeyInput,
    AddTrustKeyResult,
    QuarantinedInstall,
    RevokeKeyInput,
    RevokeKeyResult,
)
from schema.temporal import WorkflowType, revoke_key_workflow_id, trust_key_workflow_id

router = APIRouter(tags=["trust"], dependencies=[CheckParams])

# What `ed25519_key_id` (and bundles.signing.key_id) make: the only ids a trust key can have.
KEY_ID_RE = r"^ed25519:[0-9a-f]{32}$"
_KEY_ID = re.compile(KEY_ID_RE)


class AddKeyBody(BaseModel):
    publisher: StorableText = Field(min_length=1, max_length=200)
    public_key_pem: StorableText = Field(min_length=1, max_length=4096)
    expires_at: DateTimeText | None = None


class AddKeyOut(BaseModel):
    key_id: str
    publisher: str
    added: bool
    workflow_id: str
    ui_url: str


class RevokeBody(BaseModel):
    reason: StorableText = Field(default="", max_length=1000)


class RevokeOut(BaseModel):
    key_id: str
    already_revoked: bool
    revoked_versions: list[VersionRef]
    quarantined_installs: list[QuarantinedInstall]
    workflow_id: str
    ui_url: str


class TrustKeyOut(BaseModel):
    key_id: str
    publisher: str
    added_at: datetime
    added_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None


def _require_trust(principal: Principal) -> None:
    principal.require("trust:manage")
    principal.require_global("the trust policy")


def ed25519_key_id(public_key_pem: str) -> str:
    """`"ed25519:" + hex(sha256(raw public key))[:32]` (the AddTrustKey activity re-checks it)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
    except ValueError:
        raise InvalidInput("public_key_pem is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public_key_pem must be an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


@router.get("/trust/keys", response_model=list[TrustKeyOut])
async def list_keys(principal: PrincipalDep, pool: PoolDep) -> list[TrustKeyOut]:
    principal.require("trust:manage", "registry:publish")
    return [
        TrustKeyOut(**{k: getattr(r, k) for k in TrustKeyOut.model_fields})
        for r in await read.trust_keys(pool)
    ]


@router.post("/trust/keys", response_model=AddKeyOut)
async def add_key(
    body: AddKeyBody, principal: PrincipalDep, client: TemporalDep, settings: SettingsDep
) -> AddKeyOut:
    """Trust an Ed25519 key for one publisher (idempotent for the same key and publisher)."""
    _require_trust(principal)
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a time zone (e.g. 2027-01-01T00:00:00Z)")
    key_id = ed25519_key_id(body.public_key_pem)
    workflow_id = trust_key_workflow_id(key_id)
    started = await control.start(
        client,
        settings,
        WorkflowType.ADD_TRUST_KEY.value,
        AddTrustKeyInput(
            key_id=key_id,
            publisher=body.publisher,
            public_key_pem=body.public_key_pem,
            expires_at=body.expires_at,
            actor=principal.actor,
        ),
        workflow_id=workflow_id,
        result_type=AddTrustKeyResult,
        attributes=control.search_attributes(OPERATION="trust_add", ACTOR=principal.actor),
    )
    result = await control.finished(started, AddTrustKeyResult, settings)
    return AddKeyOut(
        key_id=result.key_id,
        publisher=result.publisher,
        added=result.added,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )


@router.post("/trust/keys/{key_id}/revoke", response_model=RevokeOut)
async def revoke_key(
    key_id: str,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    body: RevokeBody | None = None,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> RevokeOut:
    """Revoke a key: the versions it signed are revoked and installs on them quarantined."""
    _require_trust(principal)
    if not _KEY_ID.fullmatch(key_id):
        # No key has such an id, and its workflow id may be past Temporal's length limit (was a 500).
        raise NotFound("no trust key has that id (key ids look like ed25519:<32 lowercase hex>)")
    workflow_id = revoke_key_workflow_id(key_id)
    started = await control.start(
        client,
        settings,
        WorkflowType.REVOKE_KEY.value,
        RevokeKeyInput(
            key_id=key_id, reason=(body.reason if body else "") or reason or "", actor=principal.actor
        ),
        workflow_id=workflow_id,
        result_type=RevokeKeyResult,
        attributes=control.search_attributes(OPERATION="revoke_key", ACTOR=principal.actor),
    )
    result = await control.finished(started, RevokeKeyResult, settings)
    return RevokeOut(
        key_id=result.key_id,
        already_revoked=result.already_revoked,
        revoked_versions=result.revoked_versions,
        quarantined_installs=result.quarantined_installs,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )
