"""`POST /v1/bundles`: upload a signed bundle and run PublishWorkflow.

The body is the raw `bundle.tar.zst` (streamed, never held in memory) with:
* the declared content hash in the `x-content-hash` header or the `content_hash` query parameter;
* the signature document of `extctl bundle sign` in the `x-bundle-signature` header, base64-encoded
  (a header keeps the body a plain stream; the document is a few hundred bytes).

The upload goes to the staging blob (core.staging), hashed while it streams; only then is the workflow
started with id publish_workflow_id(hash). Re-uploading a published hash returns the earlier result.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import PrincipalDep
from api.errors import WorkflowFailed
from api.operator import control
from api.operator.deps import ResourcesDep, SettingsDep, TemporalDep
from api.operator.params import CheckParams
from api.operator.routes.namespaces import refuse_foreign_namespace
from api.operator.settings import OperatorSettings
from core.errors import InvalidInput
from core.staging import StagingWriter, new_upload_id, staging_key_of, staging_path
from schema.errors import ErrorCode
from schema.payloads.publish import PublishInput, PublishResult
from schema.temporal import WorkflowType, publish_workflow_id

router = APIRouter(tags=["bundles"], dependencies=[CheckParams])

_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_SIGNATURE_BYTES = 16 * 1024
_FLUSH_BYTES = 1 << 20


class PayloadTooLarge(InvalidInput):
    default_code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413


class PublishResponse(BaseModel):
    name: str
    version: str
    publisher: str
    content_hash: str
    signer_key_id: str
    verified_at: datetime
    already_published: bool
    workflow_id: str
    ui_url: str
    # The unregistered namespace this publish claimed for its publisher ("" when none).
    claimed_namespace: str = ""


class OperationAccepted(BaseModel):
    operation_id: str
    status: str
    ui_url: str


def _declared_hash(header: str | None, query: str | None) -> str:
    declared = header or query
    if not declared:
        raise InvalidInput("declare the bundle's content hash (x-content-hash header or ?content_hash=)")
    if not _HASH_RE.fullmatch(declared):
        raise InvalidInput("content hash must look like sha256:<64 lowercase hex>")
    if header and query and header != query:
        raise InvalidInput("x-content-hash and ?content_hash= disagree")
    return declared


def _signature(header: str | None) -> str:
    if not header:
        raise InvalidInput("missing x-bundle-signature header (base64 of the signature document)")
    try:
        raw = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("x-bundle-signature must be base64") from None
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise InvalidInput(f"signature document exceeds {MAX_SIGNATURE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        if not isinstance(json.loads(text), dict):
            raise ValueError
    except ValueError:
        raise InvalidInput("signature document must be a JSON object") from None
    return text


async def _stage(request: Request, settings: OperatorSettings, declared: str) -> str:
    """Stream the body into a staging blob; returns the upload id. Nothing is left on failure."""
    cap = settings.max_bundle_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > cap:
        raise PayloadTooLarge(f"bundle exceeds {cap} bytes")
    upload_id = new_upload_id()
    path = staging_path(settings.data_dir, upload_id, blob_dir=settings.blob_dir)
    with StagingWriter(path) as writer:
        buf = bytearray()
        async for chunk in request.stream():
            if writer.size + len(buf) + len(chunk) > cap:
                raise PayloadTooLarge(f"bundle exceeds {cap} bytes")
            buf += chunk
            if len(buf) >= _FLUSH_BYTES:
                await asyncio.to_thread(writer.write, bytes(buf))
                buf.clear()
        if buf:
            await asyncio.to_thread(writer.write, bytes(buf))
        if writer.size == 0:
            raise InvalidInput("empty upload")
        if writer.content_hash != declared:
            raise InvalidInput(
                f"upload hashes to {writer.content_hash}, not the declared {declared}",
                code=ErrorCode.HASH_MISMATCH,
            )
        await asyncio.to_thread(writer.commit)
    return upload_id


@router.post(
    "/bundles",
    response_model=PublishResponse,
    responses={
        202: {"model": OperationAccepted},
        403: {"description": "forbidden, namespace_owned, namespace_unregistered"},
        409: {"description": "version_exists"},
        413: {"description": "payload_too_large: the bundle exceeds EXT_MAX_BUNDLE_BYTES"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_bundle(
    request: Request,
    principal: PrincipalDep,
    client: TemporalDep,
    settings: SettingsDep,
    resources: ResourcesDep,
    x_content_hash: Annotated[str | None, Header()] = None,
    x_bundle_signature: Annotated[str | None, Header()] = None,
    content_hash: Annotated[str | None, Query()] = None,
    wait: Annotated[bool, Query(description="wait for the publish result")] = True,
) -> PublishResponse | JSONResponse:
    """Upload `bundle.tar.zst` and publish it (needs `registry:publish`)."""
    principal.require("registry:publish")
    declared = _declared_hash(x_content_hash, content_hash)
    signature = _signature(x_bundle_signature)
    await refuse_foreign_namespace(resources, signature)
    upload_id = await _stage(request, settings, declared)
    workflow_id = publish_workflow_id(declared)
    started = await control.start(
        client,
        settings,
        WorkflowType.PUBLISH.value,
        PublishInput(
            staging_key=staging_key_of(upload_id),
            content_hash=declared,
            signature=signature,
            actor=principal.actor,
        ),
        workflow_id=workflow_id,
        result_type=PublishResult,
        attributes=control.search_attributes(
            CONTENT_HASH=declared, OPERATION="publish", ACTOR=principal.actor
        ),
        reuse_failed_only=True,
    )
    if started.earlier:
        # Published before: this upload is not needed (the earlier one was promoted).
        staging_path(settings.data_dir, upload_id, blob_dir=settings.blob_dir).unlink(missing_ok=True)
    result = None
    if wait:
        result = await control.wait_result(started.handle, PublishResult, timeout=settings.wait_seconds)
    if result is None:
        body = OperationAccepted(
            operation_id=workflow_id, status="running", ui_url=control.ui_url(settings, workflow_id)
        )
        return JSONResponse(body.model_dump(), status_code=202)
    if not result.name:
        raise WorkflowFailed("publish workflow returned no version", details={"workflow_id": workflow_id})
    return PublishResponse(
        name=result.name,
        version=result.version,
        publisher=result.publisher,
        content_hash=result.content_hash,
        signer_key_id=result.signer_key_id,
        verified_at=result.verified_at,
        already_published=result.already_published or started.earlier,
        workflow_id=workflow_id,
        ui_url=control.ui_url(settings, workflow_id),
        claimed_namespace="" if started.earlier else result.claimed_namespace,
    )
