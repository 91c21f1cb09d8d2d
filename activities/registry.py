"""Registry activities: the only callers of `registry.write` for publish and the install lifecycle."""

from __future__ import annotations

import base64

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from bundles.signing import parse_signature_document
from registry import read, write
from schema.payloads.install import ApplyInstallChangeInput, ApplyInstallChangeResult
from schema.payloads.publish import (
    LookupPublishedInput,
    LookupPublishedResult,
    PublishResult,
    RegisterVersionInput,
    RegisterVersionResult,
)
from schema.schedules import SchedulePolicy


def published_result(v: read.VersionRecord) -> PublishResult:
    """The PublishResult of a version already in the registry."""
    fingerprint = min(v.precompiled, default="")
    artifact = v.precompiled.get(fingerprint, {}) if fingerprint else {}
    return PublishResult(
        name=v.name,
        version=v.version,
        publisher=v.publisher,
        content_hash=v.content_hash,
        bundle_key=v.storage_key,
        signer_key_id=v.signer_key_id,
        verified_at=v.verified_at,
        artifact_key=str(artifact.get("key", "")),
        engine_fingerprint=fingerprint,
        already_published=True,
        workflow_id=v.publish_workflow_id,
    )


class RegistryActivities:
    def __init__(self, pool: asyncpg.Pool, *, schedules: SchedulePolicy | None = None) -> None:
        self.pool = pool
        # Operator limits, from worker settings: not in the activity input, so they stay out of
        # workflow history and a changed limit applies to the next change without a new workflow.
        self.schedules = schedules or SchedulePolicy()

    @activity.defn(name="lookup_published")
    async def lookup_published(self, inp: LookupPublishedInput) -> LookupPublishedResult:
        """Whether name@version is free, already this bundle, or taken by another bundle."""
        with activity_errors():
            found = await read.get_version(self.pool, inp.name, inp.version)
        if found is None:
            return LookupPublishedResult(status="new")
        if found.content_hash != inp.content_hash:
            return LookupPublishedResult(status="conflict", existing_hash=found.content_hash)
        return LookupPublishedResult(
            status="same", existing_hash=found.content_hash, existing=published_result(found)
        )

    @activity.defn(name="register_version")
    async def register_version(self, inp: RegisterVersionInput) -> RegisterVersionResult:
        """Extension, bundle, version and endpoints in one transaction; version_exists on a clash."""
        precompiled = {}
        if inp.artifact_key:
            precompiled[inp.engine_fingerprint] = {
                "key": inp.artifact_key,
                "sha256": inp.artifact_sha256,
                "size": inp.artifact_size,
            }
        with activity_errors():
            # The registry keeps the base64 signature; key id and statement are in the other columns.
            signature = base64.b64encode(parse_signature_document(inp.signature).signature).decode()
            reg = await write.register_version(
                self.pool,
                content_hash=inp.content_hash,
                storage_key=inp.bundle_key,
                size=inp.size,
                signature=signature,
                signer_key_id=inp.signer_key_id,
                verified_at=inp.verified_at,
                manifest=inp.manifest,
                workflow_id=inp.workflow_id,
                precompiled=precompiled,
                claim_namespace=inp.claim_namespace,
            )
        return RegisterVersionResult(
            extension_id=reg.extension_id,
            version_id=reg.version_id,
            created=reg.created,
            claimed_namespace=reg.claimed_namespace,
        )

    @activity.defn(name="apply_install_change")
    async def apply_install_change(self, inp: ApplyInstallChangeInput) -> ApplyInstallChangeResult:
        with activity_errors():
            return await write.apply_install_change(self.pool, inp, schedules=self.schedules)
