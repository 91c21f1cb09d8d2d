"""bundles.hashing: one spelling of a content hash, checked strictly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bundles.errors import HashMismatch, InvalidBundle
from bundles.hashing import (
    content_hash,
    content_hash_file,
    content_hash_stream,
    parse_content_hash,
    verify_content_hash,
)
from schema.errors import ErrorCode

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_known_vector() -> None:
    assert content_hash(b"") == EMPTY
    assert content_hash(b"abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_stream_and_file_agree(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert content_hash_stream(io.BytesIO(data)) == content_hash(data) == content_hash_file(path)


def test_parse_returns_the_hex() -> None:
    assert parse_content_hash(EMPTY) == EMPTY.removeprefix("sha256:")


@pytest.mark.parametrize(
    "value",
    [EMPTY.upper(), EMPTY[7:], "sha512:" + EMPTY[7:], EMPTY + "0", EMPTY[:-1], " " + EMPTY, EMPTY + "\n", ""],
)
def test_parse_refuses(value: str) -> None:
    with pytest.raises(InvalidBundle, match="64 lowercase hex"):
        parse_content_hash(value)


def test_verify_content_hash() -> None:
    assert verify_content_hash(b"", EMPTY) == EMPTY
    with pytest.raises(HashMismatch) as info:
        verify_content_hash(b"x", EMPTY)
    assert info.value.code == ErrorCode.HASH_MISMATCH
    assert EMPTY in info.value.message and content_hash(b"x") in info.value.message
