"""bundles.trust: the policy accepts exactly trusted, current keys of the manifest's publisher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bundles.errors import BundleError
from bundles.signing import generate_keypair, key_id, public_key_to_pem, sign_bundle
from bundles.trust import TrustedKey, TrustPolicy, VerifiedSignature
from schema.errors import ErrorCode
from schema.manifest import Manifest, parse_manifest
from tests.bundles.bundle_helpers import MANIFEST

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HASH = "sha256:" + "c" * 64
OTHER_HASH = "sha256:" + "d" * 64
MANIFEST_V1 = parse_manifest(MANIFEST)


KeyPair = tuple[Ed25519PrivateKey, Ed25519PublicKey]


@pytest.fixture(scope="module")
def keypair() -> KeyPair:
    return generate_keypair()


def _trusted(public: Ed25519PublicKey, **overrides: Any) -> TrustedKey:
    fields: dict[str, Any] = {
        "key_id": key_id(public),
        "publisher": "acme",
        "public_key_pem": public_key_to_pem(public).decode(),
        **overrides,
    }
    return TrustedKey(**fields)


def test_trusted_current_key_is_accepted(keypair: KeyPair) -> None:
    private, public = keypair
    doc = sign_bundle(private, content_hash=HASH, manifest=MANIFEST_V1)
    result = TrustPolicy([_trusted(public)]).verify(
        content_hash=HASH, manifest=MANIFEST_V1, signature=doc, now=NOW
    )
    assert result == VerifiedSignature(key_id=key_id(public), publisher="acme", verified_at=NOW)


def test_future_expiry_and_future_revocation_still_accept(keypair: KeyPair) -> None:
    private, public = keypair
    key = _trusted(public, expires_at=NOW + timedelta(days=1), revoked_at=NOW + timedelta(hours=1))
    doc = sign_bundle(private, content_hash=HASH, manifest=MANIFEST_V1)
    TrustPolicy([key]).verify(content_hash=HASH, manifest=MANIFEST_V1, signature=doc, now=NOW)


def _case(
    name: str, keypair: KeyPair
) -> tuple[list[TrustedKey], str, Manifest, Ed25519PrivateKey, str, Manifest]:
    """(policy keys, content hash verified, manifest verified, signing key, signed hash, signed manifest)."""
    private, public = keypair
    stranger_private, stranger_public = generate_keypair()
    v2 = parse_manifest({**MANIFEST, "version": "2.0.0"})
    other_pub = parse_manifest({**MANIFEST, "publisher": "evil"})
    cases = {
        "untrusted-key": ([_trusted(public)], HASH, MANIFEST_V1, stranger_private, HASH, MANIFEST_V1),
        "empty-policy": ([], HASH, MANIFEST_V1, private, HASH, MANIFEST_V1),
        "key-of-another-publisher": (
            [_trusted(public, publisher="globex")],
            HASH,
            MANIFEST_V1,
            private,
            HASH,
            MANIFEST_V1,
        ),
        "manifest-of-another-publisher": ([_trusted(public)], HASH, other_pub, private, HASH, other_pub),
        "revoked": (
            [_trusted(public, revoked_at=NOW - timedelta(seconds=1))],
            HASH,
            MANIFEST_V1,
            private,
            HASH,
            MANIFEST_V1,
        ),
        "revoked-and-expired": (
            [_trusted(public, revoked_at=NOW - timedelta(days=2), expires_at=NOW - timedelta(days=1))],
            HASH,
            MANIFEST_V1,
            private,
            HASH,
            MANIFEST_V1,
        ),
        "expired": ([_trusted(public, expires_at=NOW)], HASH, MANIFEST_V1, private, HASH, MANIFEST_V1),
        "signature-of-another-bundle": (
            [_trusted(public)],
            OTHER_HASH,
            MANIFEST_V1,
            private,
            HASH,
            MANIFEST_V1,
        ),
        "signature-of-another-version": ([_trusted(public)], HASH, v2, private, HASH, MANIFEST_V1),
        "pem-does-not-match-key-id": (
            [_trusted(stranger_public, key_id=key_id(public))],
            HASH,
            MANIFEST_V1,
            private,
            HASH,
            MANIFEST_V1,
        ),
    }
    return cases[name]


@pytest.mark.parametrize(
    ("name", "code", "fragment"),
    [
        ("untrusted-key", ErrorCode.UNTRUSTED_KEY, "is not trusted"),
        ("empty-policy", ErrorCode.UNTRUSTED_KEY, "is not trusted"),
        (
            "key-of-another-publisher",
            ErrorCode.UNTRUSTED_KEY,
            "may sign for publisher 'globex', not for 'acme'",
        ),
        ("manifest-of-another-publisher", ErrorCode.UNTRUSTED_KEY, "not for 'evil'"),
        ("revoked", ErrorCode.KEY_REVOKED, "was revoked at 2026-11-21T11:59:59"),
        ("revoked-and-expired", ErrorCode.KEY_REVOKED, "was revoked"),
        ("expired", ErrorCode.KEY_EXPIRED, "expired at 2026-11-21T12:00:00"),
        ("signature-of-another-bundle", ErrorCode.SIGNATURE_INVALID, "statement content_hash"),
        ("signature-of-another-version", ErrorCode.SIGNATURE_INVALID, "statement version is '1.0.0'"),
        ("pem-does-not-match-key-id", ErrorCode.UNTRUSTED_KEY, "not by the given key"),
    ],
)
def test_policy_refuses(keypair: KeyPair, name: str, code: ErrorCode, fragment: str) -> None:
    keys, verify_hash, verify_manifest, signer, signed_hash, signed_manifest = _case(name, keypair)
    doc = sign_bundle(signer, content_hash=signed_hash, manifest=signed_manifest)
    with pytest.raises(BundleError) as info:
        TrustPolicy(keys).verify(content_hash=verify_hash, manifest=verify_manifest, signature=doc, now=NOW)
    assert info.value.code == code
    assert fragment in info.value.message


def test_naive_datetimes_are_refused(keypair: KeyPair) -> None:
    private, public = keypair
    doc = sign_bundle(private, content_hash=HASH, manifest=MANIFEST_V1)
    with pytest.raises(ValueError, match="timezone-aware"):
        TrustPolicy([_trusted(public)]).verify(
            content_hash=HASH, manifest=MANIFEST_V1, signature=doc, now=datetime(2026, 1, 1)
        )
    with pytest.raises(ValueError, match="expires_at"):
        TrustPolicy([_trusted(public, expires_at=datetime(2026, 1, 1))])


def test_get_returns_the_key(keypair: KeyPair) -> None:
    _, public = keypair
    key = _trusted(public)
    policy = TrustPolicy([key])
    assert policy.get(key.key_id) == key
    assert policy.get("ed25519:" + "0" * 32) is None
