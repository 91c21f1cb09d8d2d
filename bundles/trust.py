"""Trust policy: which keys may sign for which publisher, and until when.

Pure: the registry loads rows of table `trust_keys` (schema/migrations/0001_registry.sql) and builds a
`TrustPolicy`; this module never does I/O and takes `now` as an argument, so a Temporal activity and a
test decide alike.

A signature is accepted when, in this order:
  1. its key id is in the policy                      else untrusted_key
  2. the key is scoped to the manifest's publisher    else untrusted_key
  3. the key is not revoked (revoked_at <= now)       else key_revoked
  4. the key has not expired (expires_at <= now)      else key_expired
  5. the statement is this bundle's and the bytes verify   else signature_invalid
Revocation is checked before expiry so a re-verification after revocation reports the stronger reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bundles.errors import KeyExpired, KeyRevoked, UntrustedKey
from bundles.signing import SignatureDocument, Statement, load_public_key, verify_signature
from schema.manifest import Manifest


@dataclass(frozen=True, kw_only=True)
class TrustedKey:
    """One row of `trust_keys`."""

    key_id: str
    publisher: str
    public_key_pem: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class VerifiedSignature:
    """Proof that a bundle's signature was accepted, for the registry's `bundles` row."""

    key_id: str
    publisher: str
    verified_at: datetime


def _require_aware(value: datetime, what: str) -> None:
    # Comparing naive and aware datetimes raises TypeError deep inside; refuse early and clearly.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")


class TrustPolicy:
    """The set of trusted keys; `verify` decides one signature."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys:
            for stamp, what in ((key.expires_at, "expires_at"), (key.revoked_at, "revoked_at")):
                if stamp is not None:
                    _require_aware(stamp, f"{key.key_id} {what}")
            self._keys[key.key_id] = key

    def get(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    def verify(
        self, *, content_hash: str, manifest: Manifest, signature: SignatureDocument, now: datetime
    ) -> VerifiedSignature:
        """Accept or refuse `signature` for the bundle with this hash and manifest.

        Raises:
            UntrustedKey, KeyRevoked, KeyExpired, SignatureInvalid: see the module docstring.
        """
        _require_aware(now, "now")
        trusted = self._keys.get(signature.key_id)
        if trusted is None:
            raise UntrustedKey(f"signing key {signature.key_id[:80]!r} is not trusted")
        if trusted.publisher != manifest.publisher:
            raise UntrustedKey(
                f"key {trusted.key_id} may sign for publisher {trusted.publisher!r}, "
                f"not for {manifest.publisher!r}"
            )
        if trusted.revoked_at is not None and trusted.revoked_at <= now:
            raise KeyRevoked(f"key {trusted.key_id} was revoked at {trusted.revoked_at.isoformat()}")
        if trusted.expires_at is not None and trusted.expires_at <= now:
            raise KeyExpired(f"key {trusted.key_id} expired at {trusted.expires_at.isoformat()}")
        public_key = load_public_key(trusted.public_key_pem)
        verify_signature(signature, public_key, Statement.for_bundle(content_hash, manifest))
        return VerifiedSignature(key_id=trusted.key_id, publisher=trusted.publisher, verified_at=now)
