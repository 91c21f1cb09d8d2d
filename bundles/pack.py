"""Reproducible packing of an extension directory into a bundle (`bundle.tar.zst`).

A bundle holds exactly `manifest.json`, `dist/main.wasm` and the regular files under `ui/`. Everything
else in the author's directory (sources, build scripts, READMEs, `.git`) is ignored, so packing a
working tree never leaks it.

Reproducibility is what makes content addressing work (same directory -> same bytes -> same hash ->
stored once), so every input that a file system varies is fixed:

* entries sorted by path (code-point order, which equals UTF-8 byte order); no directory entries;
* tar in POSIX pax format (ustar headers; a pax header only for names that ustar cannot hold);
* mtime 0, uid/gid 0, empty uname/gname, mode 0o644 whatever the file's own metadata says;
* one zstd frame at level 9 (a good size/time balance for 20 MB components), single-threaded, with
  content size and checksum. Output is byte-identical for a given `zstandard` version, which
  constraints.txt pins.

Refused: a symlink, device or fifo at any included path (regular files only), hidden files under `ui/`
(unpack refuses hidden segments), an invalid manifest, a missing `dist/main.wasm` or UI entry file,
and anything the unpack limits would refuse (the packed bytes are unpacked once as a self-check).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import uuid
from pathlib import Path

import zstandard

from bundles.errors import InvalidBundle
from bundles.hashing import content_hash
from bundles.manifest import read_manifest
from bundles.unpack import (
    DEFAULT_LIMITS,
    MANIFEST_PATH,
    WASM_PATH,
    UnpackLimits,
    check_entry_name,
    unpack_bundle,
)

ZSTD_LEVEL = 9
TAR_FORMAT = tarfile.PAX_FORMAT
FILE_MODE = 0o644


def _read_regular(src: Path, rel: str) -> bytes:
    """Read `src/rel`, refusing symlinks at every path component and non-regular files."""
    current = src
    for part in rel.split("/"):
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            raise InvalidBundle(f"{rel} is missing in {src}") from None
        if stat.S_ISLNK(st.st_mode):
            link = current.relative_to(src).as_posix()
            raise InvalidBundle(f"{rel}: {link} is a symbolic link; bundles hold regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidBundle(f"{rel} is not a regular file")
    # O_NOFOLLOW closes the window between the lstat above and the open.
    fd = os.open(current, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _collect_ui(src: Path, limits: UnpackLimits) -> list[str]:
    ui_dir = src / "ui"
    try:
        st = ui_dir.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise InvalidBundle("ui is not a directory (symbolic links are refused)")
    found: list[str] = []
    pending = [ui_dir]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as it:
            for entry in it:
                rel = Path(entry.path).relative_to(src).as_posix()
                if entry.name.startswith("."):
                    raise InvalidBundle(f"{rel} is hidden; bundles cannot hold hidden entries, remove it")
                check_entry_name(rel, max_length=limits.max_name_length)
                if entry.is_symlink():
                    raise InvalidBundle(f"{rel} is a symbolic link; bundles hold regular files")
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append(rel)
                else:
                    raise InvalidBundle(f"{rel} is not a regular file (device, fifo or socket)")
                if len(found) > limits.max_entries:
                    raise InvalidBundle(f"ui/ has more than {limits.max_entries} files")
    return found


def _tar_entry(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def pack_directory(src: Path, *, limits: UnpackLimits = DEFAULT_LIMITS) -> bytes:
    """Pack an extension directory into reproducible bundle bytes.

    Args:
        src: the author's directory with `manifest.json`, `dist/main.wasm` and optionally `ui/`.
        limits: the unpack limits the result must satisfy.

    Returns:
        The bundle bytes; `bundles.hashing.content_hash` of them is the bundle's identity.

    Raises:
        InvalidManifest: manifest.json is not a valid manifest.
        InvalidBundle: a required file is missing, not regular, or the result breaks a limit.
    """
    if not src.is_dir():
        raise InvalidBundle(f"{src} is not a directory")
    files: dict[str, bytes] = {MANIFEST_PATH: _read_regular(src, MANIFEST_PATH)}
    manifest = read_manifest(files[MANIFEST_PATH])
    files[WASM_PATH] = _read_regular(src, WASM_PATH)
    for rel in _collect_ui(src, limits):
        files[rel] = _read_regular(src, rel)
    if manifest.ui is not None and manifest.ui.entry not in files:
        raise InvalidBundle(f"ui.entry {manifest.ui.entry!r} is missing in {src}")

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=TAR_FORMAT, encoding="utf-8") as tar:
        for name in sorted(files):
            tar.addfile(_tar_entry(name, len(files[name])), io.BytesIO(files[name]))
    compressor = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, threads=0, write_checksum=True, write_content_size=True
    )
    bundle = compressor.compress(raw.getvalue())
    # Self-check: never hand out a bundle that unpack (and therefore publish) would refuse.
    unpack_bundle(bundle, limits=limits)
    return bundle


def write_bundle(data: bytes, out: Path) -> str:
    """Write bundle bytes to `out` atomically (temporary file + rename) and return the content hash."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return content_hash(data)


__all__ = ["FILE_MODE", "TAR_FORMAT", "ZSTD_LEVEL", "pack_directory", "write_bundle"]
