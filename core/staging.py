"""Staged uploads on the local blob store: where the operator API writes an upload for PublishWorkflow.

The API may not import `bundles/` (ARCHITECTURE.md), yet its staging file must be exactly the blob
`bundles.blobstore.staging_key(upload_id)` = `staging/<id>.tar.zst` of a FilesystemBlobStore rooted at
`<data_dir>/blobs` (the worker's default blob root); tests/api/test_staging.py asserts the two agree.

Writes are atomic like the blob store's: chunks go to a hidden temporary file in the same directory
(names starting with '.' are never valid keys), which is fsynced and renamed into place on commit.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

_UPLOAD_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")


def blob_root(data_dir: Path, blob_dir: Path | None = None) -> Path:
    """The blob store root the worker uses by default (WorkerSettings.blob_root)."""
    return blob_dir if blob_dir is not None else data_dir / "blobs"


def staging_path(data_dir: Path, upload_id: str, *, blob_dir: Path | None = None) -> Path:
    """`<blob root>/staging/<upload_id>.tar.zst`."""
    if not _UPLOAD_ID_RE.fullmatch(upload_id):
        raise ValueError(f"upload id {upload_id[:80]!r} must match [a-z0-9][a-z0-9_-]{{0,127}}")
    return blob_root(data_dir, blob_dir) / "staging" / f"{upload_id}.tar.zst"


def staging_key_of(upload_id: str) -> str:
    """The blob-store key of a staged upload (what PublishInput.staging_key carries)."""
    return f"staging/{upload_id}.tar.zst"


def new_upload_id() -> str:
    return uuid.uuid4().hex


class StagingWriter:
    """Write an upload chunk by chunk while hashing it; `commit()` makes it visible atomically.

    Used as a context manager: leaving without `commit()` (an error, a size cap, a hash mismatch)
    removes the temporary file, so a refused upload leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._sha = hashlib.sha256()
        self._tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
        self._file: IO[bytes] | None = None
        self._committed = False

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._tmp.open("xb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "use StagingWriter as a context manager"
        self._file.write(chunk)
        self._sha.update(chunk)
        self.size += len(chunk)

    @property
    def content_hash(self) -> str:
        """`sha256:<hex>` of everything written so far."""
        return "sha256:" + self._sha.hexdigest()

    def commit(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        self._committed = True
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename is durable only once the directory entry is
        finally:
            os.close(fd)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if not self._committed:
            self._tmp.unlink(missing_ok=True)
