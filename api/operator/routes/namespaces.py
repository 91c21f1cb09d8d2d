"""Namespace ownership: which publisher may register new extension names under a prefix
(RegisterNamespace / RemoveNamespace workflows).

Like the trust policy it decides for every tenant, so changing it needs a global token with
`trust:manage` (admin tokens hold it); reading it needs `trust:manage` or `registry:publish`.
"""

from __future__ import annotations

import json
from datetime import datetime

import structlog
from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Principal, PrincipalDep
from api.operator import control
from api.operator.deps import PoolDep, Resources, SettingsDep, TemporalDep
from api.operator.fields import StorableText
from api.operator.params import CheckParams
from core.errors import Conflict, Forbidden, InvalidInput, Unavailable
from registry import read_namespaces
from schema.errors import ErrorCode
from schema.manifest import valid_name
from schema.namespaces import Verdict, decide, valid_prefix
from schema.payloads.namespaces import (
    RegisterNamespaceInput,
    RegisterNamespaceResult,
    RemoveNamespaceInput,
    RemoveNamespaceResult,
)
from schema.temporal import WorkflowType, register_namespace_workflow_id, remove_namespace_workflow_id

router = APIRouter(tags=["namespaces"], dependencies=[CheckParams])
log = structlog.get_logger(__name__)


class RegisterBody(BaseModel):
    publisher: StorableText = Field(min_length=1, max_length=200)


class NamespaceOut(BaseModel):
    prefix: str
    publisher: str
    source: str
    workflow_id: str
    created_by: str
    created_at: datetime


class RegisterOut(BaseModel):
    prefix: str
    publisher: str
    added: bool
    workflow_id: str
    ui_url: str


class RemoveOut(BaseModel):
    prefix: str
    publisher: str
    removed: bool
    workflow_id: str
    ui_url: str


def _require_admin(principal: Principal) -> None:
    principal.require("trust:manage")
    principal.require_global("namespace ownership")


def _checked_prefix(prefix: str) -> str:
    if not valid_prefix(prefix):
        raise InvalidInput(
            "namespace must be spelled like an extension name: lowercase labels joined by dots, at least "
            "two (e.g. com.acme)"
        )
    return prefix


@router.get("/namespaces", response_model=list[NamespaceOut])
async def list_namespaces(principal: PrincipalDep, pool: PoolDep) -> list[NamespaceOut]:
    principal.require("trust:manage", "registry:publish")
    return [
        NamespaceOut(**{k: getattr(r, k) for k in NamespaceOut.model_fields})
        for r in await read_namespaces.list_namespaces(pool)
    ]


@router.put("/namespaces/{prefix}", response_model=RegisterOut)
async def register_namespace(
    prefix: str,
    body: RegisterBody,
    principal: PrincipalDep,
    pool: PoolDep,
    client: TemporalDep,
    settings: SettingsDep,
) -> RegisterOut:
    """Give the namespace `prefix` to a publisher (idempotent for the same publisher)."""
    _require_admin(principal)
    _checked_prefix(prefix)
    held = await read_namespaces.get_namespace(pool, prefix)
    if held is not None and held.publisher != body.publisher:
        # The workflow refuses this too; answering here starts nothing.
        raise Conflict(
            f"namespace {prefix} belongs to publisher {held.publisher!r}; remove it first",
            details={"prefix": prefix},
        )
    workflow_id = register_namespace_workflow_id(prefix)
    started = await control.start(
        client,
        settings,
        WorkflowType.REGISTER_NAMESPACE.value,
        RegisterNamespaceInput(prefix=prefix, publisher=body.publisher, actor=principal.actor),
        workflow_id=workflow_id,
        result_type=RegisterNamespaceResult,
        attributes=control.search_attributes(OPERATION="namespace_add", ACTOR=principal.actor),
    )
    result = await control.finished(started, RegisterNamespaceResult, settings)
    return RegisterOut(
        prefix=result.prefix,
        publisher=result.publisher,
        added=result.added,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )


@router.delete("/namespaces/{prefix}", response_model=RemoveOut)
async def remove_namespace(
    prefix: str, principal: PrincipalDep, client: TemporalDep, settings: SettingsDep
) -> RemoveOut:
    """Free a namespace for new names (names published under it keep their owner)."""
    _require_admin(principal)
    _checked_prefix(prefix)
    workflow_id = remove_namespace_workflow_id(prefix)
    started = await control.start(
        client,
        settings,
        WorkflowType.REMOVE_NAMESPACE.value,
        RemoveNamespaceInput(prefix=prefix, actor=principal.actor),
        workflow_id=workflow_id,
        result_type=RemoveNamespaceResult,
        attributes=control.search_attributes(OPERATION="namespace_rm", ACTOR=principal.actor),
    )
    result = await control.finished(started, RemoveNamespaceResult, settings)
    return RemoveOut(
        prefix=result.prefix,
        publisher=result.publisher,
        removed=result.removed,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
    )


async def refuse_foreign_namespace(resources: Resources, signature: str) -> None:
    """Before an upload is staged: 403 namespace_owned when the registry already says the name the
    signature claims is another publisher's (or in another publisher's namespace).

    The signed statement is only a claim here, but a refusal grants nothing: a bundle whose manifest
    differs from its statement fails signature verification anyway. The publish workflow decides
    everything else (the strict policy, claims); if Postgres cannot be reached the check is left to it.
    """
    try:
        stmt = json.loads(signature).get("statement")
    except (ValueError, AttributeError):
        return
    if not isinstance(stmt, dict):
        return
    name, publisher = stmt.get("name"), stmt.get("publisher")
    if not (isinstance(name, str) and isinstance(publisher, str) and valid_name(name)):
        return
    try:
        pool = await resources.pool()
        owner = await read_namespaces.name_owner(pool, name)
        ns = await read_namespaces.namespace_of(pool, name)
    except Unavailable:
        log.warning("namespace_precheck_skipped", reason="registry_unavailable")
        return
    verdict = decide(publisher, name_owner=owner, namespace=(ns.prefix, ns.publisher) if ns else None)
    if verdict is Verdict.NAME_TAKEN:
        raise Forbidden(
            f"extension {name} belongs to publisher {owner!r}, not {publisher!r}",
            code=ErrorCode.NAMESPACE_OWNED,
            details={"name": name},
        )
    if verdict is Verdict.NAMESPACE_TAKEN and ns is not None:
        raise Forbidden(
            f"extension name {name} is in namespace {ns.prefix} of publisher {ns.publisher!r}, "
            f"not {publisher!r}",
            code=ErrorCode.NAMESPACE_OWNED,
            details={"name": name, "namespace": ns.prefix},
        )
