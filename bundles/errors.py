"""Errors of the bundles package.

    core.errors.ExtplaneError
    ├── ToolMissing                   internal: a required binary (wasm-tools) is not installed
    ├── core.errors.InvalidInput
    │   ├── BundleError               a bundle, manifest or signature is refused (never retried)
    │   │   ├── InvalidBundle         invalid_bundle: not zstd/tar, truncated, missing entry, not a component
    │   │   ├── UnsafeBundle          unsafe_bundle: traversal, links, devices, hidden entries, size limits
    │   │   ├── HashMismatch          hash_mismatch: the bytes hash to another content hash
    │   │   ├── InvalidManifest       invalid_manifest: manifest.json is not JSON or fails the model
    │   │   └── SignatureError        a signature is refused
    │   │       ├── SignatureInvalid  signature_invalid: malformed, bad bytes, statement of another bundle
    │   │       ├── UntrustedKey      untrusted_key: unknown key id, or key of another publisher
    │   │       ├── KeyRevoked        key_revoked
    │   │       └── KeyExpired        key_expired
    │   └── InvalidBlobKey            invalid_request: a blob key outside the allowed alphabet/layout
    └── core.errors.NotFound
        └── BlobNotFound              not_found: no blob under that key

Every message names what is wrong: the archive entry, the limit and its value, or the field.
"""

from __future__ import annotations

from typing import ClassVar

from core.errors import ExtplaneError, InvalidInput, NotFound
from schema.errors import ErrorCode


class BundleError(InvalidInput):
    default_code: ClassVar[ErrorCode] = ErrorCode.INVALID_BUNDLE


class InvalidBundle(BundleError):
    default_code = ErrorCode.INVALID_BUNDLE


class UnsafeBundle(BundleError):
    default_code = ErrorCode.UNSAFE_BUNDLE


class HashMismatch(BundleError):
    default_code = ErrorCode.HASH_MISMATCH


class InvalidManifest(BundleError):
    default_code = ErrorCode.INVALID_MANIFEST


class SignatureError(BundleError):
    default_code = ErrorCode.SIGNATURE_INVALID


class SignatureInvalid(SignatureError):
    default_code = ErrorCode.SIGNATURE_INVALID


class UntrustedKey(SignatureError):
    default_code = ErrorCode.UNTRUSTED_KEY


class KeyRevoked(SignatureError):
    default_code = ErrorCode.KEY_REVOKED


class KeyExpired(SignatureError):
    default_code = ErrorCode.KEY_EXPIRED


class InvalidBlobKey(InvalidInput):
    default_code = ErrorCode.INVALID_REQUEST


class BlobNotFound(NotFound):
    default_code = ErrorCode.NOT_FOUND


class ToolMissing(ExtplaneError):
    default_code = ErrorCode.INTERNAL
