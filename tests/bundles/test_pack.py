"""bundles.pack: reproducible bytes, exactly the bundle's files, and clear refusals."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from bundles.errors import BundleError, InvalidManifest
from bundles.hashing import content_hash
from bundles.pack import FILE_MODE, pack_directory, write_bundle
from bundles.unpack import UnpackLimits, unpack_bundle
from schema.errors import ErrorCode
from tests.bundles.bundle_helpers import COMPONENT, UI_FILES, make_extension_dir, manifest_bytes


def _members(bundle: bytes) -> list[tarfile.TarInfo]:
    raw = zstandard.ZstdDecompressor().decompress(bundle)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return tar.getmembers()


def test_same_directory_twice_gives_identical_bytes(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    first, second = pack_directory(src), pack_directory(src)
    assert first == second
    assert content_hash(first) == content_hash(second)


def test_mtimes_permissions_and_location_do_not_change_the_hash(tmp_path: Path) -> None:
    a = make_extension_dir(tmp_path / "a")
    expected = content_hash(pack_directory(a))
    b = make_extension_dir(tmp_path / "elsewhere" / "b")
    for path in b.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
        if path.is_file():
            path.chmod(0o600)
    (b / "ui" / "index.html").chmod(0o755)
    assert content_hash(pack_directory(b)) == expected


def test_content_change_changes_the_hash(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    before = content_hash(pack_directory(src))
    (src / "ui" / "index.html").write_bytes(b"changed")
    assert content_hash(pack_directory(src)) != before


def test_entries_are_sorted_regular_and_normalised(tmp_path: Path) -> None:
    bundle = pack_directory(make_extension_dir(tmp_path / "ext"))
    members = _members(bundle)
    names = [m.name for m in members]
    assert names == sorted(["manifest.json", "dist/main.wasm", *UI_FILES])
    for member in members:
        assert member.isreg()
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == FILE_MODE


def test_sources_and_other_files_are_ignored(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    expected = pack_directory(src)
    (src / "Makefile").write_text("all:\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "dist" / "main.wat").write_text("(module)")
    assert pack_directory(src) == expected
    assert "src/main.c" not in unpack_bundle(expected)


def test_packed_bundle_unpacks_to_the_same_files(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    files = unpack_bundle(pack_directory(src))
    assert files["manifest.json"] == (src / "manifest.json").read_bytes()
    assert files["dist/main.wasm"] == COMPONENT
    assert {k: v for k, v in files.items() if k.startswith("ui/")} == UI_FILES


def test_long_and_unicode_names_stay_reproducible(tmp_path: Path) -> None:
    ui = {**UI_FILES, "ui/" + "deep/" * 30 + "file.js": b"1", "ui/ünïcode.html": b"2"}
    src = make_extension_dir(tmp_path / "ext", ui=ui)
    bundle = pack_directory(src)
    assert bundle == pack_directory(src)
    assert set(ui) <= set(unpack_bundle(bundle))


def test_bundle_is_one_zstd_frame_with_content_size(tmp_path: Path) -> None:
    bundle = pack_directory(make_extension_dir(tmp_path / "ext"))
    params = zstandard.get_frame_parameters(bundle)
    assert params.has_checksum
    assert params.content_size == len(zstandard.ZstdDecompressor().decompress(bundle))


# Packing make_extension_dir() with the pinned fixtures; changes when the byte format, the fixture
# component or the helper's manifest changes.
PINNED_HASH = "sha256:d87c21129fdfb60a1105f1bec98009fb774a2f9818a0c922c280368cf538cbac"


def test_pinned_hash_of_a_fixed_directory(tmp_path: Path) -> None:
    # Guards the byte format (tar flavour, metadata, zstd level): a change here changes every hash.
    src = make_extension_dir(tmp_path / "ext")
    assert content_hash(pack_directory(src)) == PINNED_HASH, "pack output format changed"


def _refusal(tmp_path: Path, case: str) -> Path:
    src = make_extension_dir(tmp_path / "ext")
    if case == "missing-wasm":
        (src / "dist" / "main.wasm").unlink()
    elif case == "missing-manifest":
        (src / "manifest.json").unlink()
    elif case == "wasm-symlink":
        (src / "dist" / "main.wasm").unlink()
        (src / "dist" / "main.wasm").symlink_to(tmp_path / "elsewhere.wasm")
        (tmp_path / "elsewhere.wasm").write_bytes(COMPONENT)
    elif case == "dist-symlink":
        (tmp_path / "realdist").mkdir()
        (tmp_path / "realdist" / "main.wasm").write_bytes(COMPONENT)
        (src / "dist" / "main.wasm").unlink()
        (src / "dist").rmdir()
        (src / "dist").symlink_to(tmp_path / "realdist")
    elif case == "ui-symlink":
        (src / "ui" / "passwd").symlink_to("/etc/passwd")
    elif case == "ui-dir-symlink":
        (src / "ui" / "etc").symlink_to("/etc")
    elif case == "ui-fifo":
        os.mkfifo(src / "ui" / "pipe")
    elif case == "ui-hidden":
        (src / "ui" / ".DS_Store").write_bytes(b"x")
    elif case == "ui-entry-missing":
        (src / "ui" / "index.html").unlink()
    elif case == "wasm-is-dir":
        (src / "dist" / "main.wasm").unlink()
        (src / "dist" / "main.wasm").mkdir()
    return src


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing-wasm", "dist/main.wasm is missing"),
        ("missing-manifest", "manifest.json is missing"),
        ("wasm-symlink", "dist/main.wasm is a symbolic link"),
        ("dist-symlink", "dist is a symbolic link"),
        ("ui-symlink", "ui/passwd is a symbolic link"),
        ("ui-dir-symlink", "ui/etc is a symbolic link"),
        ("ui-fifo", "ui/pipe is not a regular file"),
        ("ui-hidden", "ui/.DS_Store is hidden"),
        ("ui-entry-missing", "ui.entry 'ui/index.html' is missing"),
        ("wasm-is-dir", "dist/main.wasm is not a regular file"),
    ],
)
def test_pack_refuses(tmp_path: Path, case: str, fragment: str) -> None:
    src = _refusal(tmp_path, case)
    with pytest.raises(BundleError) as info:
        pack_directory(src)
    assert info.value.code == ErrorCode.INVALID_BUNDLE
    assert fragment in info.value.message


def test_pack_refuses_an_invalid_manifest_naming_the_field(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext", manifest=manifest_bytes(version="one"))
    with pytest.raises(InvalidManifest) as info:
        pack_directory(src)
    assert info.value.code == ErrorCode.INVALID_MANIFEST
    assert "version" in info.value.message
    assert info.value.details["issues"][0]["path"] == "version"


def test_pack_refuses_what_unpack_would_refuse(tmp_path: Path) -> None:
    src = make_extension_dir(tmp_path / "ext")
    with pytest.raises(BundleError, match="more than 3"):
        pack_directory(src, limits=UnpackLimits(max_entries=3))


def test_pack_refuses_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        pack_directory(tmp_path / "nothing")


def test_write_bundle_is_atomic_and_returns_the_hash(tmp_path: Path) -> None:
    data = pack_directory(make_extension_dir(tmp_path / "ext"))
    out = tmp_path / "out" / "bundle.tar.zst"
    assert write_bundle(data, out) == content_hash(data)
    assert out.read_bytes() == data
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle.tar.zst"]
