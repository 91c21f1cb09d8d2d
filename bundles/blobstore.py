"""Content-addressed blob store: bundles, precompiled artifacts and staged uploads.

`BlobStore` is the port; `FilesystemBlobStore` is the local implementation (the runner mmaps artifacts
through `local_path`), `InMemoryBlobStore` serves tests. An S3-style store can implement the same
Protocol later (`local_path` returning None).

Key layout (built only through the helpers below, so every writer agrees):

    bundles/<hex>.tar.zst                       a bundle, by its content hash
    artifacts/<hex>/<engine fingerprint>.cwasm  a precompiled component, per engine configuration
    staging/<upload id>.tar.zst                 an upload not yet verified

Keys are relative, '/'-separated, over `[a-z0-9._-]`; no segment is empty or starts with '.', so a key
can never climb out of the root and never collides with the store's own temporary files (which start
with '.').
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

from bundles.errors import BlobNotFound, InvalidBlobKey
from bundles.hashing import parse_content_hash

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "FilesystemBlobStore",
    "InMemoryBlobStore",
    "InvalidBlobKey",
    "artifact_key",
    "bundle_key",
    "compiled_key",
    "staging_key",
    "validate_key",
]

_SEGMENT_RE = re.compile(r"^[a-z0-9_-][a-z0-9._-]*$")
_FINGERPRINT_RE = re.compile(r"^[a-z0-9_-][a-z0-9._-]{0,127}$")
_UPLOAD_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
_MAX_KEY_LEN = 1024
_COPY_CHUNK = 1 << 20


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a well-formed store key.

    Raises:
        InvalidBlobKey: empty, too long, absolute, containing '..', a backslash, an empty or hidden
            segment, or a character outside `[a-z0-9/._-]`.
    """
    if not key or len(key) > _MAX_KEY_LEN:
        raise InvalidBlobKey(f"blob key must be 1..{_MAX_KEY_LEN} characters, got {len(key)}")
    if key.startswith("/") or "\\" in key:
        raise InvalidBlobKey(f"blob key {key[:80]!r} must be relative and use '/' separators")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidBlobKey(f"blob key {key[:80]!r} has an empty, '.' or '..' segment")
        if not _SEGMENT_RE.fullmatch(segment):
            raise InvalidBlobKey(
                f"blob key {key[:80]!r}: segment {segment[:40]!r} must match [a-z0-9_-][a-z0-9._-]*"
            )
    return key


def bundle_key(content_hash: str) -> str:
    """Key of a bundle: `bundles/<hex>.tar.zst`."""
    return f"bundles/{parse_content_hash(content_hash)}.tar.zst"


def artifact_key(content_hash: str, engine_fingerprint: str) -> str:
    """Key of a precompiled component: `artifacts/<hex>/<fingerprint>.cwasm`.

    The fingerprint identifies the engine configuration that serialized the artifact (artifacts only
    deserialize under the same config); it must match `[a-z0-9_-][a-z0-9._-]{0,127}`.
    """
    if not _FINGERPRINT_RE.fullmatch(engine_fingerprint):
        raise InvalidBlobKey(
            f"engine fingerprint {engine_fingerprint[:80]!r} must match [a-z0-9_-][a-z0-9._-]{{0,127}}"
        )
    return f"artifacts/{parse_content_hash(content_hash)}/{engine_fingerprint}.cwasm"


def compiled_key(component_sha256: str, engine_fingerprint: str) -> str:
    """Key of the compile cache entry of a component, by the sha256 of its wasm bytes (not of its
    bundle): `compiled/<hex>/<fingerprint>.cwasm`. Versions whose bundles differ only outside the
    component (manifest, UI, README) share it, so publishing one compiles nothing."""
    artifact = artifact_key(f"sha256:{component_sha256}", engine_fingerprint)  # validates both parts
    return "compiled/" + artifact.removeprefix("artifacts/")


def staging_key(upload_id: str) -> str:
    """Key of an upload awaiting verification: `staging/<id>.tar.zst`."""
    if not _UPLOAD_ID_RE.fullmatch(upload_id):
        raise InvalidBlobKey(f"upload id {upload_id[:80]!r} must match [a-z0-9][a-z0-9_-]{{0,127}}")
    return f"staging/{upload_id}.tar.zst"


@runtime_checkable
class BlobStore(Protocol):
    """Port of a blob store. Writes are atomic: a reader sees the old bytes, the new bytes or nothing."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`; writing the same bytes again is a no-op."""
        ...

    def put_file(self, key: str, src: Path) -> None:
        """Store a copy of the file `src` under `key` (the caller keeps `src`)."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under `key`; raises BlobNotFound."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A local file holding the blob (for mmap), or None when the store is not local.

        A local store raises BlobNotFound when the blob is absent, so a path returned is always a file.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; no error if absent."""
        ...

    def size(self, key: str) -> int:
        """Size in bytes of the blob; raises BlobNotFound."""
        ...


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """Blob store on a local directory; `root/<key>` is the blob's file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _same_content(self, path: Path, data: bytes) -> bool:
        try:
            if path.stat().st_size != len(data):
                return False
            return path.read_bytes() == data
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False

    def _write_atomic(self, path: Path, fill: _Filler) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temporary name starts with '.', which no valid key segment can, so it never shadows a blob.
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
        try:
            with tmp.open("xb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            # rename() is atomic within one filesystem: readers (and mmaps of the old inode) never see
            # a partial file. Concurrent writers of one content-addressed key write equal bytes.
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self._same_content(path, data):
            return
        self._write_atomic(path, lambda out: out.write(data))

    def put_file(self, key: str, src: Path) -> None:
        path = self._path(key)

        def copy(out: _Writable) -> None:
            with src.open("rb") as inp:
                shutil.copyfileobj(inp, out, _COPY_CHUNK)

        self._write_atomic(path, copy)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(f"no blob under key {key!r}", details={"key": key}) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(f"no blob under key {key!r}", details={"key": key})
        return path

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(f"no blob under key {key!r}", details={"key": key})
        return path.stat().st_size


class InMemoryBlobStore:
    """Blob store in a dict, for tests; thread-safe; `local_path` is always None."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        with self._lock:
            self._blobs[key] = bytes(data)

    def put_file(self, key: str, src: Path) -> None:
        self.put(key, src.read_bytes())

    def get(self, key: str) -> bytes:
        validate_key(key)
        with self._lock:
            try:
                return self._blobs[key]
            except KeyError:
                raise BlobNotFound(f"no blob under key {key!r}", details={"key": key}) from None

    def exists(self, key: str) -> bool:
        validate_key(key)
        with self._lock:
            return key in self._blobs

    def local_path(self, key: str) -> Path | None:
        validate_key(key)
        return None

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def size(self, key: str) -> int:
        return len(self.get(key))

    def keys(self) -> list[str]:
        """All stored keys, sorted (a test helper)."""
        with self._lock:
            return sorted(self._blobs)


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Filler(Protocol):
    def __call__(self, out: _Writable, /) -> object: ...
