"""Trust-policy activities: verify a bundle signature, add a key, revoke a key and what it signed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from bundles.errors import SignatureInvalid, UntrustedKey
from bundles.signing import (
    SignatureDocument,
    Statement,
    key_id,
    load_public_key,
    parse_signature_document,
)
from bundles.trust import TrustedKey, TrustPolicy
from registry import read, write
from schema.manifest import Manifest
from schema.payloads.common import VersionRef
from schema.payloads.sign_verify import VerifySignatureInput, VerifySignatureResult
from schema.payloads.trust import (
    AddTrustKeyInput,
    AddTrustKeyResult,
    ListSignedInput,
    ListSignedResult,
    MarkKeyRevokedInput,
    MarkKeyRevokedResult,
    QuarantinedInstall,
    RevokeVersionInput,
    RevokeVersionResult,
    SignedBundle,
)


class TrustActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="verify_signature")
    async def verify_signature(self, inp: VerifySignatureInput) -> VerifySignatureResult:
        """Check the signature document against the trust policy as of now."""
        with activity_errors():
            doc = parse_signature_document(inp.signature)
            keys = await read.trust_keys(self.pool, [doc.key_id])
            policy = TrustPolicy(
                TrustedKey(
                    key_id=k.key_id,
                    publisher=k.publisher,
                    public_key_pem=k.public_key_pem,
                    expires_at=k.expires_at,
                    revoked_at=k.revoked_at,
                )
                for k in keys
            )
            # The statement binds only name, version and publisher of the (already validated) manifest.
            manifest = Manifest.model_construct(
                name=inp.name, version=inp.version, publisher=inp.publisher, runtime="wasm-component@1"
            )
            verified = policy.verify(
                content_hash=inp.content_hash, manifest=manifest, signature=doc, now=datetime.now(UTC)
            )
        return VerifySignatureResult(signer_key_id=verified.key_id, verified_at=verified.verified_at)

    @activity.defn(name="add_trust_key")
    async def add_trust_key(self, inp: AddTrustKeyInput) -> AddTrustKeyResult:
        with activity_errors():
            actual = key_id(load_public_key(inp.public_key_pem))
            if actual != inp.key_id:
                raise UntrustedKey(f"the public key's id is {actual}, not {inp.key_id}")
            if inp.expires_at is not None and inp.expires_at.tzinfo is None:
                raise SignatureInvalid("expires_at must carry a time zone")
            added = await write.add_trust_key(
                self.pool,
                key_id=inp.key_id,
                publisher=inp.publisher,
                public_key_pem=inp.public_key_pem,
                expires_at=inp.expires_at,
                added_by=inp.actor,
            )
        return AddTrustKeyResult(key_id=inp.key_id, publisher=inp.publisher, added=added)

    @activity.defn(name="mark_key_revoked")
    async def mark_key_revoked(self, inp: MarkKeyRevokedInput) -> MarkKeyRevokedResult:
        with activity_errors():
            r = await write.mark_key_revoked(
                self.pool, key_id=inp.key_id, reason=inp.reason, revoked_at=inp.revoked_at
            )
        return MarkKeyRevokedResult(key_id=r.key_id, publisher=r.publisher, already_revoked=r.already_revoked)

    @activity.defn(name="list_signed_bundles")
    async def list_signed_bundles(self, inp: ListSignedInput) -> ListSignedResult:
        with activity_errors():
            versions = await read.bundles_signed_by(self.pool, inp.key_id)
        return ListSignedResult(
            bundles=[
                SignedBundle(
                    content_hash=v.content_hash,
                    name=v.name,
                    version=v.version,
                    publisher=v.publisher,
                    signature=SignatureDocument(
                        key_id=v.signer_key_id,
                        statement=Statement(
                            content_hash=v.content_hash, name=v.name, version=v.version, publisher=v.publisher
                        ),
                        signature=base64.b64decode(v.signature),
                    ).dumps(),
                    status=v.status,
                )
                for v in versions
            ]
        )

    @activity.defn(name="revoke_bundle_versions")
    async def revoke_bundle_versions(self, inp: RevokeVersionInput) -> RevokeVersionResult:
        with activity_errors():
            r = await write.revoke_bundle_versions(
                self.pool,
                content_hash=inp.content_hash,
                revoked_at=inp.revoked_at,
                workflow_id=inp.workflow_id,
            )
        return RevokeVersionResult(
            versions=[VersionRef(name=n, version=v, content_hash=inp.content_hash) for n, v in r.versions],
            quarantined=[
                QuarantinedInstall(install_id=i, tenant_id=t, extension=e, revision=rev)
                for i, t, e, rev in r.quarantined
            ],
        )
