"""Ed25519 bundle signatures over a canonical statement.

The signed bytes are not the bundle but a statement naming it:

    {"content_hash":"sha256:…","name":"com.acme.hello","publisher":"acme",
     "type":"extplane.bundle-signature/v1","version":"1.0.0"}

serialized as JSON with sorted keys and no whitespace. Binding the manifest's name, version and
publisher to the content hash means a signature cannot be moved to another bundle, to another version
of the same extension, or to another publisher's namespace; the `type` field keeps these bytes from
ever being valid for another protocol that uses the same key.

The detached signature document (what `extctl bundle sign` writes) is JSON:

    {"algorithm": "ed25519", "key_id": "ed25519:<32 hex>", "signature": "<base64>",
     "statement": {…the statement above…}}

Key ids are `"ed25519:" + hex(sha256(raw 32-byte public key))[:32]`; keys travel as PEM (PKCS#8 for
private keys, SubjectPublicKeyInfo for public keys), unencrypted: the CLI protects the private key
file with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bundles.errors import SignatureInvalid, UntrustedKey
from bundles.hashing import parse_content_hash
from schema.manifest import Manifest

STATEMENT_TYPE = "extplane.bundle-signature/v1"
ALGORITHM = "ed25519"
KEY_ID_PREFIX = "ed25519:"
_STATEMENT_FIELDS = ("content_hash", "name", "publisher", "type", "version")
_DOCUMENT_FIELDS = ("algorithm", "key_id", "signature", "statement")
MAX_DOCUMENT_BYTES = 16 * 1024


@dataclass(frozen=True, kw_only=True)
class Statement:
    """What a signature vouches for: these exact bytes are this name, version and publisher."""

    content_hash: str
    name: str
    version: str
    publisher: str
    type: str = STATEMENT_TYPE

    @classmethod
    def for_bundle(cls, content_hash: str, manifest: Manifest) -> Statement:
        """The statement for a bundle with this hash and manifest."""
        parse_content_hash(content_hash)
        return cls(
            content_hash=content_hash,
            name=manifest.name,
            version=manifest.version,
            publisher=manifest.publisher,
        )

    def to_json(self) -> dict[str, str]:
        return {
            "content_hash": self.content_hash,
            "name": self.name,
            "publisher": self.publisher,
            "type": self.type,
            "version": self.version,
        }

    def canonical_bytes(self) -> bytes:
        """The exact bytes that are signed: sorted keys, no whitespace, UTF-8."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, kw_only=True)
class SignatureDocument:
    """A detached signature: which key signed which statement."""

    key_id: str
    statement: Statement
    signature: bytes
    algorithm: str = ALGORITHM

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "statement": self.statement.to_json(),
        }

    def dumps(self) -> str:
        """The document as written to a `.sig` file (indented, sorted keys, trailing newline)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair."""
    private = Ed25519PrivateKey.generate()
    return private, private.public_key()


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse a PKCS#8 PEM private key; raises SignatureInvalid if it is not an unencrypted Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureInvalid(f"private key is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureInvalid(f"private key is {type(key).__name__}, expected Ed25519")
    return key


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM public key; raises SignatureInvalid unless it is Ed25519."""
    raw = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise SignatureInvalid(f"public key is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureInvalid(f"public key is {type(key).__name__}, expected Ed25519")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """`"ed25519:" + hex(sha256(raw public key bytes))[:32]` (the trust_keys primary key)."""
    raw = public_key.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:32]


def sign_bundle(
    private_key: Ed25519PrivateKey, *, content_hash: str, manifest: Manifest
) -> SignatureDocument:
    """Sign the statement binding `content_hash` to the manifest's name, version and publisher."""
    statement = Statement.for_bundle(content_hash, manifest)
    return SignatureDocument(
        key_id=key_id(private_key.public_key()),
        statement=statement,
        signature=private_key.sign(statement.canonical_bytes()),
    )


def _require_str(obj: dict[str, Any], field: str, where: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise SignatureInvalid(f"signature document: {where}{field} must be a string")
    return value


def parse_signature_document(raw: bytes | str) -> SignatureDocument:
    """Parse a signature document, checking its shape (not its validity).

    Raises:
        SignatureInvalid: not JSON, unknown or missing fields, wrong algorithm, bad base64.
    """
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise SignatureInvalid(f"signature document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SignatureInvalid(f"signature document is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SignatureInvalid("signature document must be a JSON object")
    if sorted(doc) != sorted(_DOCUMENT_FIELDS):
        raise SignatureInvalid(
            f"signature document must have exactly the fields {', '.join(_DOCUMENT_FIELDS)}"
        )
    algorithm = _require_str(doc, "algorithm", "")
    if algorithm != ALGORITHM:
        raise SignatureInvalid(
            f"signature document: algorithm {algorithm!r} is not supported, expected ed25519"
        )
    stmt = doc["statement"]
    if not isinstance(stmt, dict) or sorted(stmt) != sorted(_STATEMENT_FIELDS):
        raise SignatureInvalid(
            f"signature document: statement must have exactly {', '.join(_STATEMENT_FIELDS)}"
        )
    statement = Statement(
        content_hash=_require_str(stmt, "content_hash", "statement."),
        name=_require_str(stmt, "name", "statement."),
        version=_require_str(stmt, "version", "statement."),
        publisher=_require_str(stmt, "publisher", "statement."),
        type=_require_str(stmt, "type", "statement."),
    )
    if statement.type != STATEMENT_TYPE:
        raise SignatureInvalid(
            f"signature document: statement.type {statement.type!r} is not {STATEMENT_TYPE!r}"
        )
    try:
        signature = base64.b64decode(_require_str(doc, "signature", ""), validate=True)
    except binascii.Error:
        raise SignatureInvalid("signature document: signature is not base64") from None
    if len(signature) != 64:
        raise SignatureInvalid(f"signature document: signature is {len(signature)} bytes, Ed25519 needs 64")
    return SignatureDocument(key_id=_require_str(doc, "key_id", ""), statement=statement, signature=signature)


def verify_signature(doc: SignatureDocument, public_key: Ed25519PublicKey, expected: Statement) -> None:
    """Check that `doc` is `public_key`'s signature over exactly `expected`.

    Raises:
        UntrustedKey: the document names another key than `public_key`.
        SignatureInvalid: the statement is for another bundle, name, version or publisher, or the
            signature bytes do not verify.
    """
    actual_id = key_id(public_key)
    if doc.key_id != actual_id:
        raise UntrustedKey(f"signature was made by key {doc.key_id[:80]!r}, not by the given key {actual_id}")
    for field, want in expected.to_json().items():
        got = doc.statement.to_json()[field]
        if got != want:
            raise SignatureInvalid(
                f"signature statement {field} is {got[:100]!r} but this bundle's is {want!r}",
                details={"field": field},
            )
    try:
        public_key.verify(doc.signature, expected.canonical_bytes())
    except InvalidSignature:
        raise SignatureInvalid(f"signature bytes do not verify with key {actual_id}") from None
