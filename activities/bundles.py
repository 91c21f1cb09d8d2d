"""Blob-store activities of publish: inspect a staged upload, promote it, discard blobs (compensation).

Blob writes are content addressed (`bundles/<hex>.tar.zst`), so a repeated promote writes equal bytes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from temporalio import activity

from activities._errors import activity_errors
from bundles.blobstore import BlobStore, FilesystemBlobStore, bundle_key
from bundles.hashing import verify_content_hash
from bundles.inspect import inspect_bundle
from schema.payloads.common import EndpointRef
from schema.payloads.publish import (
    DiscardBlobsInput,
    DiscardBlobsResult,
    InspectBundleInput,
    InspectBundleResult,
    PromoteBundleInput,
    PromoteBundleResult,
)

__all__ = ["BlobStore", "BundleActivities", "open_blob_store"]

log = structlog.get_logger(__name__)


def open_blob_store(root: Path) -> BlobStore:
    """The blob store the activities of this process share (the worker may not import bundles/)."""
    return FilesystemBlobStore(root)


class BundleActivities:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    @activity.defn(name="inspect_bundle")
    async def inspect_bundle(self, inp: InspectBundleInput) -> InspectBundleResult:
        """Hash check, safe unpack, manifest validation and component check of a staged upload."""
        with activity_errors():
            data = await asyncio.to_thread(self.store.get, inp.staging_key)
            bundle = await asyncio.to_thread(inspect_bundle, data, expected_hash=inp.content_hash)
        m = bundle.manifest
        return InspectBundleResult(
            content_hash=bundle.content_hash,
            size=bundle.size,
            name=m.name,
            publisher=m.publisher,
            version=m.version,
            capabilities=sorted(str(c) for c in m.capabilities),
            endpoints=[EndpointRef(method=e.method, path=e.path) for e in (m.api.endpoints if m.api else [])],
            manifest=m.model_dump(mode="json"),
        )

    @activity.defn(name="promote_bundle")
    async def promote_bundle(self, inp: PromoteBundleInput) -> PromoteBundleResult:
        """Copy the verified upload to its content-addressed key (bytes re-checked against the hash)."""
        key = bundle_key(inp.content_hash)
        with activity_errors():
            data = await asyncio.to_thread(self.store.get, inp.staging_key)
            verify_content_hash(data, inp.content_hash)
            await asyncio.to_thread(self.store.put, key, data)
        log.info("bundle_promoted", key=key, size=len(data))
        return PromoteBundleResult(bundle_key=key, size=len(data))

    @activity.defn(name="discard_blobs")
    async def discard_blobs(self, inp: DiscardBlobsInput) -> DiscardBlobsResult:
        deleted: list[str] = []
        with activity_errors():
            for key in sorted(set(inp.keys)):
                if await asyncio.to_thread(self.store.exists, key):
                    await asyncio.to_thread(self.store.delete, key)
                    deleted.append(key)
        return DiscardBlobsResult(deleted=deleted)
