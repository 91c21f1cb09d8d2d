"""Content hashes: `"sha256:" + lowercase hex of sha256(bytes)` (CONTRACT.md, Bundle).

The prefix names the algorithm so the format can change later without ambiguity; parsing is strict
(lowercase only) so one bundle has exactly one spelling of its hash, which matters because the hash is a
business key (workflow ids, blob keys, registry rows).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO

from bundles.errors import HashMismatch, InvalidBundle

PREFIX = "sha256:"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# 1 MiB reads keep memory flat for large bundles while amortising syscall overhead.
_CHUNK = 1 << 20


def content_hash(data: bytes) -> str:
    """Return the content hash of `data`."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def content_hash_stream(stream: BinaryIO) -> str:
    """Return the content hash of everything left in a binary stream, reading it in chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return PREFIX + digest.hexdigest()


def content_hash_file(path: Path) -> str:
    """Return the content hash of a file without loading it into memory."""
    with path.open("rb") as stream:
        return content_hash_stream(stream)


def parse_content_hash(value: str) -> str:
    """Validate a content hash and return its 64 lowercase hex digits.

    Raises:
        InvalidBundle: when `value` is not exactly `sha256:` followed by 64 lowercase hex digits.
    """
    if not _HASH_RE.fullmatch(value):
        raise InvalidBundle(
            f"content hash {value[:80]!r} is not 'sha256:' followed by 64 lowercase hex digits",
            details={"field": "content_hash"},
        )
    return value[len(PREFIX) :]


def verify_content_hash(data: bytes, expected: str) -> str:
    """Check that `data` hashes to `expected` (re-checked at load time) and return the hash.

    Raises:
        InvalidBundle: `expected` is not a well-formed content hash.
        HashMismatch: the bytes hash to something else.
    """
    parse_content_hash(expected)
    actual = content_hash(data)
    if actual != expected:
        raise HashMismatch(
            f"bundle bytes hash to {actual}, expected {expected}",
            details={"expected": expected, "actual": actual},
        )
    return actual
