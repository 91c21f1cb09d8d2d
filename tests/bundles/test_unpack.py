"""bundles.unpack: hostile and broken archives are refused by name, and nothing lands on disk."""

from __future__ import annotations

import functools
import gzip
import os
import tarfile
from pathlib import Path

import pytest

from bundles.errors import BundleError, InvalidBundle, UnsafeBundle
from bundles.unpack import UnpackLimits, check_entry_name, extract_to, unpack_bundle
from schema.errors import ErrorCode
from tests.bundles.bundle_helpers import (
    COMPONENT,
    Entry,
    archive,
    file_entries,
    manifest_bytes,
    raw_tar,
    snapshot,
    zst,
)

UNSAFE = ErrorCode.UNSAFE_BUNDLE
INVALID = ErrorCode.INVALID_BUNDLE


@functools.cache
def _bomb() -> bytes:
    # 20 MiB of zeros compress to a few KiB: far beyond 100:1 once past the 1 MiB floor.
    return archive([*file_entries(), Entry("ui/zeros.bin", bytes(20 * 1024 * 1024))])


def _hostile(tmp_path: Path) -> list[tuple[str, bytes, ErrorCode, str, UnpackLimits | None]]:
    """(id, archive bytes, expected code, message fragment, limits) for every refused archive."""
    escaped = tmp_path / "escaped"
    valid = file_entries()
    random_blob = os.urandom(4000)
    long_dir = "ui/" + "d" * 120
    cases: list[tuple[str, bytes, ErrorCode, str, UnpackLimits | None]] = [
        (
            "traversal",
            archive([*valid, Entry("../../escaped", b"x")]),
            UNSAFE,
            "'../../escaped' contains '..'",
            None,
        ),
        ("traversal-inside-ui", archive([*valid, Entry("ui/../../../escaped", b"x")]), UNSAFE, "'..'", None),
        ("absolute-path", archive([*valid, Entry(str(escaped), b"x")]), UNSAFE, "is an absolute path", None),
        (
            "pax-long-name-traversal",
            archive([*valid, Entry(f"{long_dir}/../../../../escaped", b"x")]),
            UNSAFE,
            "'..'",
            None,
        ),
        (
            "gnu-long-name-traversal",
            archive([*valid, Entry(f"{long_dir}/../../../../escaped", b"x")], fmt=tarfile.GNU_FORMAT),
            UNSAFE,
            "'..'",
            None,
        ),
        ("backslash", archive([*valid, Entry("ui\\..\\..\\escaped", b"x")]), UNSAFE, "backslash", None),
        (
            "symlink",
            archive([*valid, Entry("ui/link", type=tarfile.SYMTYPE, linkname=str(escaped))]),
            UNSAFE,
            "'ui/link' is a symbolic link",
            None,
        ),
        (
            "hardlink",
            archive([*valid, Entry("ui/hard", type=tarfile.LNKTYPE, linkname="manifest.json")]),
            UNSAFE,
            "'ui/hard' is a hard link",
            None,
        ),
        (
            "char-device",
            archive([*valid, Entry("ui/null", type=tarfile.CHRTYPE)]),
            UNSAFE,
            "is a device",
            None,
        ),
        (
            "block-device",
            archive([*valid, Entry("ui/sda", type=tarfile.BLKTYPE)]),
            UNSAFE,
            "is a device",
            None,
        ),
        ("fifo", archive([*valid, Entry("ui/pipe", type=tarfile.FIFOTYPE)]), UNSAFE, "is a fifo", None),
        (
            "hidden-segment",
            archive([*valid, Entry("ui/.env", b"SECRET=1")]),
            UNSAFE,
            "hidden segment '.env'",
            None,
        ),
        (
            "hidden-dir",
            archive([*valid, Entry("ui/.git/config", b"x")]),
            UNSAFE,
            "hidden segment '.git'",
            None,
        ),
        (
            "dot-slash-prefix",
            archive([Entry("./manifest.json", manifest_bytes())]),
            UNSAFE,
            "hidden segment '.'",
            None,
        ),
        (
            "control-character",
            archive([*valid, Entry("ui/a\nb.html", b"x")]),
            UNSAFE,
            "control characters",
            None,
        ),
        ("empty-segment", archive([*valid, Entry("ui//a.html", b"x")]), UNSAFE, "empty path segment", None),
        (
            "duplicate-entry",
            archive([*valid, Entry("manifest.json", b"{}")]),
            UNSAFE,
            "duplicates entry",
            None,
        ),
        (
            "duplicate-by-case",
            archive([*valid, Entry("ui/INDEX.html", b"x")]),
            UNSAFE,
            "duplicates entry",
            None,
        ),
        (
            "file-used-as-directory",
            archive([*valid, Entry("ui/index.html/evil.js", b"x")]),
            UNSAFE,
            "uses file 'ui/index.html' as a directory",
            None,
        ),
        (
            "too-many-entries",
            archive([*valid, *(Entry(f"ui/f{i}.txt", b"x") for i in range(10))]),
            UNSAFE,
            "more than 8 entries",
            UnpackLimits(max_entries=8),
        ),
        (
            "too-many-bytes",
            archive([*valid, Entry("ui/blob.bin", random_blob)]),
            UNSAFE,
            "'ui/blob.bin' (4000 bytes) exceeds the bundle limit of 3000 uncompressed bytes",
            UnpackLimits(max_total_bytes=3000, max_ratio=1e9),
        ),
        (
            "bomb-ratio",
            _bomb(),
            UNSAFE,
            "decompression bomb",
            None,
        ),
        (
            "outside-layout",
            archive([*valid, Entry("src/main.c", b"int main;")]),
            INVALID,
            "'src/main.c' is outside",
            None,
        ),
        (
            "missing-manifest",
            archive([Entry("dist/main.wasm", COMPONENT)]),
            INVALID,
            "no manifest.json",
            None,
        ),
        (
            "missing-wasm",
            archive([Entry("manifest.json", manifest_bytes())]),
            INVALID,
            "no dist/main.wasm",
            None,
        ),
        ("empty-file", b"", INVALID, "empty", None),
        ("not-zstd-plain-tar", raw_tar(valid), INVALID, "not zstd-compressed", None),
        ("not-zstd-gzip", gzip.compress(raw_tar(valid)), INVALID, "not zstd-compressed", None),
        ("zstd-of-not-a-tar", zst(os.urandom(3000)), INVALID, "not a valid tar archive", None),
        ("truncated-half", archive(valid)[: len(archive(valid)) // 2], INVALID, "truncated", None),
        ("truncated-checksum", archive(valid)[:-2], INVALID, "truncated", None),
        ("trailing-garbage", archive(valid) + b"trailing", INVALID, "trailing bytes", None),
        ("corrupt-zstd-body", archive(valid)[:4] + b"\xff" * 64, INVALID, "not a valid zstd stream", None),
    ]
    return cases


CASE_IDS = [case[0] for case in _hostile(Path("/nonexistent"))]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_hostile_archive_is_refused_and_writes_nothing(tmp_path: Path, case_id: str) -> None:
    case = {c[0]: c for c in _hostile(tmp_path)}[case_id]
    _, data, code, fragment, limits = case
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    target = sandbox / "target"
    before = snapshot(tmp_path)
    with pytest.raises(BundleError) as info:
        extract_to(data, target, limits=limits or UnpackLimits())
    assert info.value.code == code, info.value.message
    assert fragment in info.value.message
    assert snapshot(tmp_path) == before
    assert not target.exists()
    assert not (tmp_path / "escaped").exists()
    # The in-memory core refuses the same way.
    with pytest.raises(BundleError) as again:
        unpack_bundle(data, limits=limits or UnpackLimits())
    assert again.value.code == code


def test_at_least_15_hostile_cases() -> None:
    assert len(CASE_IDS) >= 15
    assert len(set(CASE_IDS)) == len(CASE_IDS)


def test_valid_archive_unpacks_in_memory() -> None:
    files = unpack_bundle(archive(file_entries()))
    assert list(files) == ["dist/main.wasm", "manifest.json", "ui/assets/app.js", "ui/index.html"]
    assert files["dist/main.wasm"] == COMPONENT


def test_directory_entries_are_accepted_but_not_returned() -> None:
    entries = [Entry("dist", type=tarfile.DIRTYPE), Entry("ui/", type=tarfile.DIRTYPE), *file_entries()]
    assert "dist" not in unpack_bundle(archive(entries))


def test_extract_to_writes_files_with_fixed_modes(tmp_path: Path) -> None:
    target = tmp_path / "out" / "bundle"
    files = extract_to(archive(file_entries()), target)
    assert sorted(snapshot(target)) == sorted(["dist", "ui", "ui/assets", *files])
    for name, content in files.items():
        path = target / name
        assert path.read_bytes() == content
        assert path.stat().st_mode & 0o777 == 0o644
    assert snapshot(tmp_path / "out") == {"bundle", *(f"bundle/{p}" for p in snapshot(target))}


def test_extract_to_refuses_an_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    with pytest.raises(FileExistsError):
        extract_to(archive(file_entries()), target)
    assert snapshot(tmp_path) == {"bundle"}


def test_ratio_floor_lets_small_compressible_bundles_through() -> None:
    # 512 KiB of zeros compresses > 100:1 but stays under the 1 MiB floor.
    files = unpack_bundle(archive([*file_entries(), Entry("ui/zeros.bin", bytes(512 * 1024))]))
    assert len(files["ui/zeros.bin"]) == 512 * 1024


def test_total_byte_limit_counts_across_entries() -> None:
    entries = [*file_entries(), Entry("ui/a.bin", os.urandom(600)), Entry("ui/b.bin", os.urandom(600))]
    base = sum(len(e.data) for e in file_entries())
    with pytest.raises(UnsafeBundle, match="'ui/b.bin'"):
        unpack_bundle(archive(entries), limits=UnpackLimits(max_total_bytes=base + 1000, max_ratio=1e9))


@pytest.mark.parametrize(
    "name", ["manifest.json", "dist/main.wasm", "ui/index.html", "ui/a-b_c.d/e f.js", "ui/ünïcode.html"]
)
def test_check_entry_name_accepts(name: str) -> None:
    assert check_entry_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "C:/x", "a/../b", "a\\b", ".hidden", "a/.b", "a//b", "x" * 600]
)
def test_check_entry_name_refuses(name: str) -> None:
    with pytest.raises(UnsafeBundle):
        check_entry_name(name)


def test_invalid_and_unsafe_are_distinct_codes() -> None:
    assert InvalidBundle("x").code == ErrorCode.INVALID_BUNDLE
    assert UnsafeBundle("x").code == ErrorCode.UNSAFE_BUNDLE
    assert UnsafeBundle("x").http_status == 400
