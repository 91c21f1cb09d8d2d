"""Extensions and their versions (the registry, global to all tenants)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.operator.deps import PoolDep
from api.operator.params import CheckParams
from core.errors import NotFound
from registry import read, read_operator

router = APIRouter(tags=["extensions"], dependencies=[CheckParams])

READ_SCOPES = ("ext:read", "installs:manage", "registry:publish")


class ExtensionOut(BaseModel):
    name: str
    publisher: str
    created_at: datetime
    versions: list[str]


class VersionOut(BaseModel):
    name: str
    version: str
    publisher: str
    content_hash: str
    status: str
    signer_key_id: str
    verified_at: datetime
    size_bytes: int
    capabilities: list[str]
    publish_workflow_id: str
    manifest: dict[str, Any] | None = None


def _version_out(v: read.VersionRecord, *, with_manifest: bool = False) -> VersionOut:
    return VersionOut(
        name=v.name,
        version=v.version,
        publisher=v.publisher,
        content_hash=v.content_hash,
        status=v.status,
        signer_key_id=v.signer_key_id,
        verified_at=v.verified_at,
        size_bytes=v.size_bytes,
        capabilities=sorted(v.manifest.get("capabilities", [])),
        publish_workflow_id=v.publish_workflow_id,
        manifest=v.manifest if with_manifest else None,
    )


@router.get("/extensions", response_model=list[ExtensionOut])
async def list_extensions(principal: PrincipalDep, pool: PoolDep) -> list[ExtensionOut]:
    """Every published extension with its versions in publish order."""
    principal.require(*READ_SCOPES)
    return [ExtensionOut(**vars(e)) for e in await read_operator.list_extensions(pool)]


@router.get("/extensions/{name}/versions", response_model=list[VersionOut])
async def list_versions(name: str, principal: PrincipalDep, pool: PoolDep) -> list[VersionOut]:
    principal.require(*READ_SCOPES)
    versions = await read.list_versions(pool, name)
    if not versions:
        raise NotFound(f"no extension named {name!r}")
    return [_version_out(v) for v in versions]


@router.get("/extensions/{name}/versions/{version}", response_model=VersionOut)
async def get_version(name: str, version: str, principal: PrincipalDep, pool: PoolDep) -> VersionOut:
    principal.require(*READ_SCOPES)
    found = await read.get_version(pool, name, version)
    if found is None:
        raise NotFound(f"no version {name}@{version}")
    return _version_out(found, with_manifest=True)
