"""Safe unpacking of an untrusted bundle (`tar` in one zstd frame).

`unpack_bundle(data)` is the core: it decompresses in a stream, parses the tar in a stream and returns
`{path: bytes}` for the regular files, refusing anything that could escape a directory or exhaust the
host. Nothing touches the disk until the whole archive has been accepted; `extract_to` then writes the
accepted files into a fresh directory that appears atomically (rename of a sibling temporary directory).

Why zstd is fed through a decompression object a kilobyte at a time: one zstd block of a few bytes can
expand to 128 KiB, so bounding the *input* per step bounds the output per step (to ~32 MiB), and the
byte and ratio limits are checked after every step, long before a bomb inflates. The stream reader of
`zstandard` would not do: it cannot tell a truncated frame from a complete one.

Rejections (each message names the entry):
  unsafe_bundle   absolute path, '..', backslash, hidden segment (leading '.'), control characters,
                  symlink, hard link, device, fifo, sparse or other non-regular entry, duplicate entry
                  (also by case), a file used as a directory, too many entries, too many bytes,
                  a decompression ratio above the limit
  invalid_bundle  empty input, not zstd, trailing data after the frame, truncated frame or tar, not a tar,
                  an entry outside manifest.json / dist/main.wasm / ui/**, missing manifest.json or
                  dist/main.wasm

Member modes, owners and times are ignored: extracted files are always 0o644, directories 0o755.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import zstandard

from bundles.errors import InvalidBundle, UnsafeBundle

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MANIFEST_PATH = "manifest.json"
WASM_PATH = "dist/main.wasm"
UI_PREFIX = "ui/"
REQUIRED_ENTRIES = (MANIFEST_PATH, WASM_PATH)

_FEED = 1024
# Per entry, a tar stream carries a 512-byte header, up to 511 bytes of padding and, for long names, a
# pax header of about the same size; this slack keeps the stream cap from refusing legitimate bundles.
_PER_ENTRY_OVERHEAD = 4096
_FIXED_OVERHEAD = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class UnpackLimits:
    """Limits applied while unpacking; every one is checked before the memory it protects is used."""

    max_entries: int = 4096
    max_total_bytes: int = 256 * 1024 * 1024
    max_ratio: float = 100.0
    # Below this many decompressed bytes the ratio is not checked: tiny archives of text or zero
    # padding legitimately compress far better than 100:1.
    ratio_floor_bytes: int = 1024 * 1024
    max_name_length: int = 512


DEFAULT_LIMITS = UnpackLimits()


class _BoundedZstdReader(io.RawIOBase):
    """A read-only stream of the decompressed single zstd frame in `data`, enforcing the limits."""

    def __init__(self, data: bytes, limits: UnpackLimits) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._buf = bytearray()
        self._produced = 0
        self._limits = limits
        self._stream_cap = limits.max_total_bytes + limits.max_entries * _PER_ENTRY_OVERHEAD + _FIXED_OVERHEAD
        self._ratio_cap = max(float(limits.ratio_floor_bytes), limits.max_ratio * len(data))

    def readable(self) -> bool:
        return True

    def _feed(self) -> bool:
        """Decompress one more slice of input; False once the frame is complete."""
        if self._dobj.eof:
            if self._dobj.unused_data or self._pos < len(self._data):
                raise InvalidBundle("bundle has trailing bytes after its zstd frame")
            return False
        if self._pos >= len(self._data):
            raise InvalidBundle("bundle is truncated: the zstd frame ends early")
        chunk = self._data[self._pos : self._pos + _FEED]
        self._pos += len(chunk)
        try:
            out = self._dobj.decompress(chunk)
        except zstandard.ZstdError as exc:
            raise InvalidBundle(f"bundle is not a valid zstd stream: {exc}") from None
        self._produced += len(out)
        if self._produced > self._stream_cap:
            raise UnsafeBundle(
                f"bundle decompresses to more than {self._stream_cap} bytes "
                f"(limit max_total_bytes={self._limits.max_total_bytes})"
            )
        if self._produced > self._ratio_cap:
            raise UnsafeBundle(
                f"bundle decompresses more than {self._limits.max_ratio:g} times its size "
                f"({len(self._data)} compressed bytes): refused as a decompression bomb"
            )
        self._buf += out
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            while self._feed():
                pass
        else:
            while len(self._buf) < size and self._feed():
                pass
        n = len(self._buf) if size is None or size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def finish(self) -> None:
        """Drain to the end of the frame so truncation or trailing data behind the tar is caught."""
        while self._feed():
            self._buf.clear()


def check_entry_name(name: str, *, max_length: int = DEFAULT_LIMITS.max_name_length) -> str:
    """Return `name` if it is a safe relative path inside a bundle, else raise UnsafeBundle."""
    shown = repr(name[:120])
    if not name:
        raise UnsafeBundle("bundle has an entry with an empty name")
    if len(name) > max_length:
        raise UnsafeBundle(f"entry {shown} has a name longer than {max_length} characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeBundle(f"entry {shown} has a name that is not UTF-8") from None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise UnsafeBundle(f"entry {shown} has control characters in its name")
    if "\\" in name:
        raise UnsafeBundle(f"entry {shown} contains a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeBundle(f"entry {shown} is an absolute path")
    for segment in name.split("/"):
        if segment == "..":
            raise UnsafeBundle(f"entry {shown} contains '..'")
        if segment == "":
            raise UnsafeBundle(f"entry {shown} has an empty path segment")
        if segment.startswith("."):
            raise UnsafeBundle(f"entry {shown} has a hidden segment {segment[:40]!r}")
    return name


def _check_member_type(member: tarfile.TarInfo, shown: str) -> None:
    if member.issym():
        raise UnsafeBundle(f"entry {shown} is a symbolic link")
    if member.islnk():
        raise UnsafeBundle(f"entry {shown} is a hard link")
    if member.ischr() or member.isblk():
        raise UnsafeBundle(f"entry {shown} is a device")
    if member.isfifo():
        raise UnsafeBundle(f"entry {shown} is a fifo")
    if member.issparse():
        raise UnsafeBundle(f"entry {shown} is a sparse file")
    if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
        raise UnsafeBundle(f"entry {shown} has unsupported tar type {member.type!r}")


def _check_allowed_location(name: str, *, is_dir: bool) -> None:
    if is_dir:
        if name in ("dist", "ui") or name.startswith(UI_PREFIX):
            return
    elif name in REQUIRED_ENTRIES or name.startswith(UI_PREFIX):
        return
    raise InvalidBundle(
        f"entry {name[:120]!r} is outside manifest.json, dist/main.wasm and ui/ (bundles hold only those)"
    )


def unpack_bundle(data: bytes, *, limits: UnpackLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Unpack an untrusted bundle in memory.

    Args:
        data: the bundle bytes (`tar` compressed as one zstd frame).
        limits: entry count, byte, ratio and name-length limits.

    Returns:
        The regular files by path, sorted by path. Directory entries are checked but not returned.

    Raises:
        InvalidBundle: not a well-formed bundle (see the module docstring).
        UnsafeBundle: an entry or the archive's size could harm the host.
    """
    if not data:
        raise InvalidBundle("bundle is empty (0 bytes)")
    if data[:4] != ZSTD_MAGIC:
        raise InvalidBundle("bundle is not zstd-compressed (missing zstd magic bytes)")
    reader = _BoundedZstdReader(data, limits)
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    seen_folded: dict[str, str] = {}
    total = 0
    count = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                count += 1
                if count > limits.max_entries:
                    raise UnsafeBundle(f"bundle has more than {limits.max_entries} entries")
                name = check_entry_name(member.name, max_length=limits.max_name_length)
                shown = repr(name[:120])
                _check_member_type(member, shown)
                folded = name.casefold()
                if folded in seen_folded:
                    raise UnsafeBundle(f"entry {shown} duplicates entry {seen_folded[folded][:120]!r}")
                seen_folded[folded] = name
                _check_allowed_location(name, is_dir=member.isdir())
                if member.isdir():
                    dirs.add(name)
                    continue
                if member.size > limits.max_total_bytes - total:
                    raise UnsafeBundle(
                        f"entry {shown} ({member.size} bytes) exceeds the bundle limit of "
                        f"{limits.max_total_bytes} uncompressed bytes"
                    )
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - regular members always have a file object
                    raise InvalidBundle(f"entry {shown} has no data")
                content = extracted.read()
                if len(content) != member.size:
                    raise InvalidBundle(f"bundle is truncated inside entry {shown}")
                total += len(content)
                files[name] = content
        reader.finish()
    except tarfile.TarError as exc:
        if "unexpected end" in str(exc):
            raise InvalidBundle("bundle is truncated: the tar archive ends inside an entry") from None
        raise InvalidBundle(f"bundle is not a valid tar archive: {exc}") from None
    except EOFError:
        raise InvalidBundle("bundle is truncated: the tar archive ends early") from None
    except ValueError as exc:
        # tarfile parses some pax records (GNU.sparse.*) with int() and tuple unpacking, unguarded.
        raise InvalidBundle(f"bundle is not a valid tar archive: {str(exc)[:200]}") from None
    _check_no_file_as_directory(files, dirs)
    for required in REQUIRED_ENTRIES:
        if required not in files:
            raise InvalidBundle(f"bundle has no {required}")
    return dict(sorted(files.items()))


def _check_no_file_as_directory(files: dict[str, bytes], dirs: set[str]) -> None:
    for name in files:
        if name in dirs:
            raise UnsafeBundle(f"entry {name[:120]!r} is both a file and a directory")
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                raise UnsafeBundle(f"entry {name[:120]!r} uses file {parent[:120]!r} as a directory")


def extract_to(data: bytes, target: Path, *, limits: UnpackLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Unpack `data` and write its files under `target`, which must not exist yet.

    The archive is fully validated in memory first, so a refused bundle writes nothing. Accepted files
    are written to a sibling temporary directory that is renamed to `target`: readers see either no
    directory or the complete tree.

    Returns:
        The files written, as `unpack_bundle` returns them.

    Raises:
        InvalidBundle, UnsafeBundle: as `unpack_bundle`.
        FileExistsError: `target` already exists.
    """
    files = unpack_bundle(data, limits=limits)
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"extraction target {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir(mode=0o755)
    try:
        root = staging.resolve()
        for name, content in files.items():
            dest = (staging / name).resolve()
            # Names were validated above; this re-check guards the invariant against future edits.
            if root not in dest.parents:
                raise UnsafeBundle(f"entry {name[:120]!r} resolves outside the target directory")
            dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files
