"""Publish: a staged upload becomes a verified, precompiled, registered version.

Start: `client.start_workflow(WorkflowType.PUBLISH, PublishInput(...),
id=publish_workflow_id(content_hash), task_queue=CONTROL_TASK_QUEUE)`; the result is `PublishResult`,
a failure is an ApplicationError whose `type` is a schema.errors.ErrorCode value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schema.payloads.common import EndpointRef


@dataclass(frozen=True, kw_only=True)
class PublishInput:
    """A staged upload to publish.

    `staging_key` is the blob-store key the upload was written to (`staging/<upload id>.tar.zst`);
    `content_hash` is the hash the uploader declares ("sha256:<hex>"), re-checked on the bytes;
    `signature` is the JSON signature document of `extctl bundle sign`, as text.
    """

    staging_key: str
    content_hash: str
    signature: str
    actor: str = "system"


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    name: str
    version: str
    publisher: str
    content_hash: str
    bundle_key: str
    signer_key_id: str
    verified_at: datetime
    artifact_key: str = ""
    engine_fingerprint: str = ""
    # True when this content hash was already published: the earlier result is returned unchanged.
    already_published: bool = False
    workflow_id: str = ""
    # The unregistered namespace this publish claimed for its publisher ("" when none).
    claimed_namespace: str = ""


# --- activities -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InspectBundleInput:
    staging_key: str
    content_hash: str


@dataclass(frozen=True, kw_only=True)
class InspectBundleResult:
    content_hash: str
    size: int
    name: str
    publisher: str
    version: str
    capabilities: list[str] = field(default_factory=list)
    endpoints: list[EndpointRef] = field(default_factory=list)
    # The validated manifest as JSON (small: at most 256 KiB by schema.manifest).
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LookupPublishedInput:
    content_hash: str
    name: str
    version: str


@dataclass(frozen=True, kw_only=True)
class LookupPublishedResult:
    # "new": name@version is free; "same": already published with this hash; "conflict": another hash.
    status: str
    existing_hash: str = ""
    existing: PublishResult | None = None


@dataclass(frozen=True, kw_only=True)
class PrecompileInput:
    staging_key: str
    content_hash: str


@dataclass(frozen=True, kw_only=True)
class PrecompileResult:
    artifact_key: str
    engine_fingerprint: str
    sha256: str
    size: int


@dataclass(frozen=True, kw_only=True)
class PromoteBundleInput:
    staging_key: str
    content_hash: str


@dataclass(frozen=True, kw_only=True)
class PromoteBundleResult:
    bundle_key: str
    size: int


@dataclass(frozen=True, kw_only=True)
class DiscardBlobsInput:
    """Compensation: blob keys to delete (missing keys are fine)."""

    keys: list[str]


@dataclass(frozen=True, kw_only=True)
class DiscardBlobsResult:
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RegisterVersionInput:
    """Everything the registry transaction writes: extension, bundle, version, endpoints."""

    content_hash: str
    bundle_key: str
    size: int
    signature: str
    signer_key_id: str
    verified_at: datetime
    manifest: dict[str, Any]
    workflow_id: str
    artifact_key: str = ""
    engine_fingerprint: str = ""
    artifact_sha256: str = ""
    artifact_size: int = 0
    # An unregistered namespace the publish claims for the manifest's publisher in the same
    # transaction ("" = claim nothing); the transaction re-checks ownership either way.
    claim_namespace: str = ""


@dataclass(frozen=True, kw_only=True)
class RegisterVersionResult:
    extension_id: str
    version_id: str
    # False when exactly this version (same hash) was already registered: an idempotent retry.
    created: bool
    # The namespace this registration claimed ("" when it claimed none, e.g. already claimed).
    claimed_namespace: str = ""
