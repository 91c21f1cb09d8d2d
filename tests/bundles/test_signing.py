"""bundles.signing: keys, canonical statements and detached signature documents."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from bundles.errors import SignatureInvalid, UntrustedKey
from bundles.signing import (
    Statement,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    parse_signature_document,
    private_key_to_pem,
    public_key_to_pem,
    sign_bundle,
    verify_signature,
)
from schema.errors import ErrorCode
from schema.manifest import Manifest, parse_manifest
from tests.bundles.bundle_helpers import MANIFEST

HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64
MANIFEST_V1 = parse_manifest(MANIFEST)
MANIFEST_V2 = parse_manifest({**MANIFEST, "version": "2.0.0"})


def test_canonical_statement_bytes_are_sorted_and_compact() -> None:
    statement = Statement.for_bundle(HASH_A, MANIFEST_V1)
    assert statement.canonical_bytes() == (
        b'{"content_hash":"sha256:' + b"a" * 64 + b'","name":"com.acme.hello","publisher":"acme",'
        b'"type":"extplane.bundle-signature/v1","version":"1.0.0"}'
    )


def test_key_id_format_and_stability() -> None:
    private, public = generate_keypair()
    kid = key_id(public)
    assert kid.startswith("ed25519:") and len(kid) == len("ed25519:") + 32
    assert key_id(load_public_key(public_key_to_pem(public))) == kid
    assert key_id(load_private_key(private_key_to_pem(private)).public_key()) == kid
    assert key_id(generate_keypair()[1]) != kid


def test_pem_formats() -> None:
    private, public = generate_keypair()
    assert private_key_to_pem(private).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_key_to_pem(public).startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_public_key(public_key_to_pem(public).decode()) is not None


def test_sign_then_verify_round_trip_through_json() -> None:
    private, public = generate_keypair()
    doc = sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1)
    parsed = parse_signature_document(doc.dumps())
    assert parsed == doc
    verify_signature(parsed, public, Statement.for_bundle(HASH_A, MANIFEST_V1))
    assert json.loads(doc.dumps())["algorithm"] == "ed25519"


@pytest.mark.parametrize(
    ("content_hash", "manifest", "field"),
    [(HASH_B, MANIFEST_V1, "content_hash"), (HASH_A, MANIFEST_V2, "version")],
    ids=["another-bundle", "another-version"],
)
def test_signature_does_not_move_to_another_bundle_or_version(
    content_hash: str, manifest: Manifest, field: str
) -> None:
    private, public = generate_keypair()
    doc = sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1)
    with pytest.raises(SignatureInvalid) as info:
        verify_signature(doc, public, Statement.for_bundle(content_hash, manifest))
    assert info.value.code == ErrorCode.SIGNATURE_INVALID
    assert f"statement {field}" in info.value.message


def test_rewritten_statement_fails_the_signature_check() -> None:
    # An attacker edits the statement inside the document to match their bundle: bytes no longer verify.
    private, public = generate_keypair()
    doc = json.loads(sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1).dumps())
    doc["statement"]["content_hash"] = HASH_B
    with pytest.raises(SignatureInvalid, match="do not verify"):
        verify_signature(
            parse_signature_document(json.dumps(doc)), public, Statement.for_bundle(HASH_B, MANIFEST_V1)
        )


def test_flipped_signature_bit_is_refused() -> None:
    private, public = generate_keypair()
    doc = json.loads(sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1).dumps())
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[0] ^= 1
    doc["signature"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureInvalid, match="do not verify"):
        verify_signature(
            parse_signature_document(json.dumps(doc)), public, Statement.for_bundle(HASH_A, MANIFEST_V1)
        )


def test_signature_by_another_key_names_both_keys() -> None:
    private, _ = generate_keypair()
    _, other_public = generate_keypair()
    doc = sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1)
    with pytest.raises(UntrustedKey) as info:
        verify_signature(doc, other_public, Statement.for_bundle(HASH_A, MANIFEST_V1))
    assert doc.key_id in info.value.message and key_id(other_public) in info.value.message


def _doc_json() -> dict[str, Any]:
    private, _ = generate_keypair()
    doc: dict[str, Any] = json.loads(sign_bundle(private, content_hash=HASH_A, manifest=MANIFEST_V1).dumps())
    return doc


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(algorithm="rsa"), "algorithm 'rsa'"),
        (lambda d: d.pop("key_id"), "exactly the fields"),
        (lambda d: d.update(extra=1), "exactly the fields"),
        (lambda d: d["statement"].pop("publisher"), "statement must have exactly"),
        (lambda d: d["statement"].update(type="other/v1"), "statement.type 'other/v1'"),
        (lambda d: d["statement"].update(name=5), "statement.name must be a string"),
        (lambda d: d.update(signature="not base64!"), "not base64"),
        (lambda d: d.update(signature=base64.b64encode(b"short").decode()), "Ed25519 needs 64"),
    ],
    ids=[
        "algorithm",
        "missing-field",
        "extra-field",
        "statement-field",
        "statement-type",
        "name-type",
        "b64",
        "len",
    ],
)
def test_malformed_documents_are_refused(mutate: Callable[[dict[str, Any]], object], fragment: str) -> None:
    doc = _doc_json()
    mutate(doc)
    with pytest.raises(SignatureInvalid) as info:
        parse_signature_document(json.dumps(doc))
    assert fragment in info.value.message


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"{" + b" " * 20000 + b"}"])
def test_non_documents_are_refused(raw: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        parse_signature_document(raw)


def test_loading_a_non_ed25519_or_garbage_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SignatureInvalid, match="expected Ed25519"):
        load_public_key(ec_pem)
    with pytest.raises(SignatureInvalid, match="not a PEM"):
        load_public_key(b"garbage")
    with pytest.raises(SignatureInvalid, match="not an unencrypted PEM"):
        load_private_key(b"garbage")
