"""core.staging writes exactly the blob that bundles.blobstore names for a staged upload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bundles.blobstore import FilesystemBlobStore, staging_key
from core.staging import StagingWriter, new_upload_id, staging_key_of, staging_path


def test_staging_path_is_the_blob_store_staging_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    upload_id = new_upload_id()
    assert staging_key_of(upload_id) == staging_key(upload_id)
    with StagingWriter(staging_path(data_dir, upload_id)) as w:
        w.write(b"hello ")
        w.write(b"bundle")
        w.commit()
    store = FilesystemBlobStore(data_dir / "blobs")
    assert store.local_path(staging_key(upload_id)) == staging_path(data_dir, upload_id)
    assert store.get(staging_key(upload_id)) == b"hello bundle"
    assert w.content_hash == "sha256:" + hashlib.sha256(b"hello bundle").hexdigest()
    assert w.size == 12


def test_explicit_blob_dir_wins(tmp_path: Path) -> None:
    upload_id = new_upload_id()
    path = staging_path(tmp_path / "data", upload_id, blob_dir=tmp_path / "elsewhere")
    assert path == FilesystemBlobStore(tmp_path / "elsewhere").root / staging_key(upload_id)


def test_uncommitted_upload_leaves_nothing(tmp_path: Path) -> None:
    path = staging_path(tmp_path, new_upload_id())
    with pytest.raises(RuntimeError), StagingWriter(path) as w:
        w.write(b"partial")
        raise RuntimeError("client went away")
    assert list(path.parent.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "../x", "UPPER", "a/b", ".hidden"])
def test_upload_id_must_be_a_valid_key_segment(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        staging_path(tmp_path, bad)
