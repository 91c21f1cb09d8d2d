"""bundles.inspect: hash, safe unpack, manifest and component check in one call."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundles.errors import BundleError
from bundles.hashing import content_hash
from bundles.inspect import inspect_bundle
from bundles.pack import pack_directory
from schema.errors import ErrorCode
from tests.bundles.bundle_helpers import (
    COMPONENT,
    CORE_MODULE,
    Entry,
    archive,
    file_entries,
    make_extension_dir,
    manifest_bytes,
)


def test_packed_bundle_inspects_clean(tmp_path: Path) -> None:
    data = pack_directory(make_extension_dir(tmp_path / "ext"))
    inspected = inspect_bundle(data, expected_hash=content_hash(data))
    assert inspected.content_hash == content_hash(data)
    assert inspected.size == len(data)
    assert inspected.manifest.name == "com.acme.hello"
    assert inspected.wasm == COMPONENT
    assert inspected.manifest_bytes == inspected.files["manifest.json"]
    assert inspected.component.exports == ("handler",)


def _flip_middle_byte(data: bytes) -> bytes:
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x40
    return bytes(tampered)


VALID = archive(file_entries())


@pytest.mark.parametrize(
    ("data", "expected_hash", "code", "fragment"),
    [
        (VALID, "sha256:" + "0" * 64, ErrorCode.HASH_MISMATCH, "expected sha256:" + "0" * 64),
        (_flip_middle_byte(VALID), content_hash(VALID), ErrorCode.HASH_MISMATCH, "bundle bytes hash to"),
        (_flip_middle_byte(VALID), None, ErrorCode.INVALID_BUNDLE, "zstd"),
        (VALID, "sha256:XYZ", ErrorCode.INVALID_BUNDLE, "64 lowercase hex"),
        (
            archive(file_entries({"manifest.json": b"{not json"})),
            None,
            ErrorCode.INVALID_MANIFEST,
            "not valid UTF-8 JSON",
        ),
        (
            archive(file_entries({"manifest.json": manifest_bytes(capabilities=["cap:root"])})),
            None,
            ErrorCode.INVALID_MANIFEST,
            "capabilities[0]: unknown capability 'cap:root'",
        ),
        (
            archive([e for e in file_entries() if e.name != "ui/index.html"]),
            None,
            ErrorCode.INVALID_BUNDLE,
            "ui.entry 'ui/index.html' is not in the bundle",
        ),
        (
            archive(file_entries({"dist/main.wasm": CORE_MODULE})),
            None,
            ErrorCode.INVALID_BUNDLE,
            "core WebAssembly module, not a component",
        ),
        (archive([*file_entries(), Entry("ui/../x", b"")]), None, ErrorCode.UNSAFE_BUNDLE, "'..'"),
    ],
    ids=[
        "hash-mismatch",
        "tampered-byte-with-hash",
        "tampered-byte",
        "malformed-expected-hash",
        "bad-json-manifest",
        "invalid-manifest-field",
        "ui-entry-missing",
        "core-module",
        "traversal",
    ],
)
def test_inspect_refuses(data: bytes, expected_hash: str | None, code: ErrorCode, fragment: str) -> None:
    with pytest.raises(BundleError) as info:
        inspect_bundle(data, expected_hash=expected_hash)
    assert info.value.code == code
    assert fragment in info.value.message


def test_check_wasm_can_be_skipped() -> None:
    inspected = inspect_bundle(archive(file_entries({"dist/main.wasm": CORE_MODULE})), check_wasm=False)
    assert inspected.wasm == CORE_MODULE
