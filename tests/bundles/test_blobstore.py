"""bundles.blobstore: both implementations honour the BlobStore contract; keys cannot escape."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bundles.blobstore import (
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    InMemoryBlobStore,
    InvalidBlobKey,
    artifact_key,
    bundle_key,
    compiled_key,
    staging_key,
    validate_key,
)
from bundles.errors import InvalidBundle
from schema.errors import ErrorCode

HEX = "0123456789abcdef" * 4
HASH = "sha256:" + HEX


@pytest.fixture(params=["filesystem", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
    else:
        yield InMemoryBlobStore()


def test_key_helpers() -> None:
    assert bundle_key(HASH) == f"bundles/{HEX}.tar.zst"
    assert artifact_key(HASH, "wasmtime-50.0.1-x86_64-fuel-epoch") == (
        f"artifacts/{HEX}/wasmtime-50.0.1-x86_64-fuel-epoch.cwasm"
    )
    assert staging_key("0b7c6f0e2a3d4c5b") == "staging/0b7c6f0e2a3d4c5b.tar.zst"
    assert compiled_key(HEX, "fp") == f"compiled/{HEX}/fp.cwasm"  # by the component's own hash


@pytest.mark.parametrize(
    "call",
    [
        lambda: bundle_key("sha256:ABC"),
        lambda: bundle_key(HEX),
        lambda: artifact_key(HASH, "../escape"),
        lambda: artifact_key(HASH, "Has/Slash"),
        lambda: compiled_key("../" + HEX[3:], "fp"),
        lambda: compiled_key(HEX, "../fp"),
        lambda: staging_key("../x"),
        lambda: staging_key(""),
    ],
)
def test_key_helpers_refuse_bad_parts(call: Callable[[], str]) -> None:
    # A bad content hash is invalid_bundle (hashing), a bad fingerprint or upload id invalid_request.
    with pytest.raises((InvalidBlobKey, InvalidBundle)) as info:
        call()
    assert info.value.code in (ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_BUNDLE)


@pytest.mark.parametrize(
    "key",
    ["", "/abs/key", "a/../b", "..", "a\\b", "a//b", "A/upper", "a/.hidden", "space key", "a/", "x" * 1025],
)
def test_invalid_keys_are_refused_everywhere(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        validate_key(key)
    for op in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidBlobKey):
            op()


def test_put_get_size_exists_delete(store: BlobStore) -> None:
    key = bundle_key(HASH)
    assert not store.exists(key)
    store.put(key, b"bundle bytes")
    assert store.exists(key)
    assert store.get(key) == b"bundle bytes"
    assert store.size(key) == len(b"bundle bytes")
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # absent: no error


def test_missing_blob_raises_blob_not_found(store: BlobStore) -> None:
    key = bundle_key(HASH)
    for op in (lambda: store.get(key), lambda: store.size(key)):
        with pytest.raises(BlobNotFound) as info:
            op()
        assert info.value.code == ErrorCode.NOT_FOUND and key in info.value.message


def test_put_is_idempotent_and_replaces(store: BlobStore) -> None:
    key = artifact_key(HASH, "fp1")
    store.put(key, b"same")
    store.put(key, b"same")
    assert store.get(key) == b"same"
    store.put(key, b"newer")
    assert store.get(key) == b"newer"


def test_put_file_copies(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "staged.tar.zst"
    src.write_bytes(b"staged" * 1000)
    store.put_file(staging_key("u1"), src)
    assert store.get(staging_key("u1")) == src.read_bytes()
    assert src.exists()


def test_implementations_satisfy_the_protocol(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_filesystem_layout_and_local_path(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    key = artifact_key(HASH, "fp")
    store.put(key, b"artifact")
    path = store.local_path(key)
    assert path == tmp_path / "blobs" / "artifacts" / HEX / "fp.cwasm"
    assert path is not None and path.read_bytes() == b"artifact"
    with pytest.raises(BlobNotFound):
        store.local_path(artifact_key(HASH, "other"))


def test_filesystem_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    store.put(bundle_key(HASH), b"a")
    store.put(bundle_key(HASH), b"b")
    src = tmp_path / "src"
    src.write_bytes(b"c")
    store.put_file(staging_key("x"), src)
    names = sorted(p.relative_to(tmp_path / "blobs").as_posix() for p in (tmp_path / "blobs").rglob("*"))
    assert names == ["bundles", f"bundles/{HEX}.tar.zst", "staging", "staging/x.tar.zst"]


def test_failed_put_file_leaves_nothing(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    with pytest.raises(FileNotFoundError):
        store.put_file(staging_key("x"), tmp_path / "missing")
    assert [p.name for p in (tmp_path / "blobs" / "staging").iterdir()] == []


def test_in_memory_local_path_is_none() -> None:
    store = InMemoryBlobStore()
    store.put(bundle_key(HASH), b"x")
    assert store.local_path(bundle_key(HASH)) is None
    assert store.keys() == [bundle_key(HASH)]


def test_concurrent_puts_of_one_key_end_with_complete_bytes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    key = bundle_key(HASH)
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=store.put, args=(key, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(key) in payloads
