"""Blob and compile activities alone, with ActivityEnvironment and a real filesystem blob store."""

from __future__ import annotations

import hashlib
import io
import tarfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import compile as compile_module
from activities.bundles import BundleActivities
from activities.compile import CompileActivities
from bundles.blobstore import FilesystemBlobStore, artifact_key, bundle_key, compiled_key, staging_key
from bundles.hashing import content_hash
from runner.compile import engine_fingerprint, precompile
from schema.payloads.publish import DiscardBlobsInput, InspectBundleInput, PrecompileInput, PromoteBundleInput
from tests.workflows.helpers import COMPONENT, ROOT, build_bundle, manifest

CORE_MODULE = (ROOT / "tests" / "bundles" / "fixtures" / "core_module.wasm").read_bytes()
ECHO = (ROOT / "tests" / "runner" / "fixtures" / "echo.wasm").read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def put_staged(store: FilesystemBlobStore, data: bytes) -> tuple[str, str]:
    key = staging_key(uuid.uuid4().hex)
    store.put(key, data)
    return key, content_hash(data)


async def test_inspect_returns_the_validated_manifest(store: FilesystemBlobStore, tmp_path: Path) -> None:
    key, digest = put_staged(store, build_bundle(tmp_path, manifest("com.acme.hello", "1.2.3")))

    got = await ActivityEnvironment().run(
        BundleActivities(store).inspect_bundle, InspectBundleInput(staging_key=key, content_hash=digest)
    )

    assert (got.name, got.version, got.publisher, got.content_hash) == (
        "com.acme.hello",
        "1.2.3",
        "acme",
        digest,
    )
    assert [(e.method, e.path) for e in got.endpoints] == [("GET", "/status"), ("POST", "/items/:id")]
    assert got.manifest["capabilities"] == ["cap:log.emit", "cap:storage.kv"]


@pytest.mark.parametrize(
    ("case", "code"),
    [("missing", "not_found"), ("traversal", "unsafe_bundle"), ("garbage", "invalid_bundle")],
)
async def test_inspect_failures_are_permanent_with_their_code(
    store: FilesystemBlobStore, case: str, code: str
) -> None:
    if case == "missing":
        key, digest = staging_key(uuid.uuid4().hex), "sha256:" + "a" * 64
    elif case == "traversal":
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            member = tarfile.TarInfo("../escape.txt")
            member.size = 1
            tar.addfile(member, io.BytesIO(b"x"))
        key, digest = put_staged(store, zstandard.ZstdCompressor().compress(raw.getvalue()))
    else:
        key, digest = put_staged(store, b"not a bundle at all")

    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(
            BundleActivities(store).inspect_bundle, InspectBundleInput(staging_key=key, content_hash=digest)
        )

    assert info.value.type == code
    assert info.value.non_retryable


async def test_promote_checks_the_hash_and_discard_deletes(
    store: FilesystemBlobStore, tmp_path: Path
) -> None:
    data = build_bundle(tmp_path, manifest("com.acme.hello"))
    key, digest = put_staged(store, data)
    acts = BundleActivities(store)
    env = ActivityEnvironment()

    promoted = await env.run(acts.promote_bundle, PromoteBundleInput(staging_key=key, content_hash=digest))
    again = await env.run(acts.promote_bundle, PromoteBundleInput(staging_key=key, content_hash=digest))

    assert (
        promoted == again
        and promoted.bundle_key == bundle_key(digest)
        and store.get(promoted.bundle_key) == data
    )
    with pytest.raises(ApplicationError) as info:
        await env.run(
            acts.promote_bundle, PromoteBundleInput(staging_key=key, content_hash="sha256:" + "b" * 64)
        )
    assert info.value.type == "hash_mismatch"
    gone = await env.run(acts.discard_blobs, DiscardBlobsInput(keys=[key, promoted.bundle_key, key]))
    assert sorted(gone.deleted) == sorted([key, promoted.bundle_key])
    assert not store.exists(key) and not store.exists(promoted.bundle_key)


async def test_precompile_stores_the_artifact_once(store: FilesystemBlobStore, tmp_path: Path) -> None:
    key, digest = put_staged(store, build_bundle(tmp_path, manifest("com.acme.hello")))
    with ThreadPoolExecutor(max_workers=1) as pool:
        acts = CompileActivities(store, pool)
        first = await ActivityEnvironment().run(
            acts.precompile_component, PrecompileInput(staging_key=key, content_hash=digest)
        )
        mtime = (store.root / first.artifact_key).stat().st_mtime_ns
        second = await ActivityEnvironment().run(
            acts.precompile_component, PrecompileInput(staging_key=key, content_hash=digest)
        )

    assert first == second
    assert first.artifact_key == artifact_key(digest, engine_fingerprint())
    assert first.size == store.size(first.artifact_key) > 0
    assert (store.root / first.artifact_key).stat().st_mtime_ns == mtime


async def test_precompile_rejects_a_core_module(store: FilesystemBlobStore, tmp_path: Path) -> None:
    key, digest = put_staged(store, build_bundle(tmp_path, manifest("com.acme.hello"), wasm=CORE_MODULE))
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(
            CompileActivities(store, pool).precompile_component,
            PrecompileInput(staging_key=key, content_hash=digest),
        )
    assert info.value.type == "module_rejected" and info.value.non_retryable


async def test_a_version_with_the_same_component_copies_its_compilation(
    store: FilesystemBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two versions whose bundles differ only in the manifest compile once; each still gets its own
    artifact, so discarding one version's never takes the other's; another component compiles."""
    compiled: list[int] = []

    def counting(wasm: bytes) -> bytes:
        compiled.append(len(wasm))
        return precompile(wasm)

    monkeypatch.setattr(compile_module, "precompile", counting)
    staged = [
        put_staged(store, build_bundle(tmp_path, manifest("com.acme.hello", version)))
        for version in ("1.0.0", "1.0.1")
    ]
    other = put_staged(store, build_bundle(tmp_path, manifest("com.acme.hello", "1.0.2"), wasm=ECHO))
    with ThreadPoolExecutor(max_workers=1) as pool:
        acts = CompileActivities(store, pool)
        first, second, third = [
            await ActivityEnvironment().run(
                acts.precompile_component, PrecompileInput(staging_key=key, content_hash=digest)
            )
            for key, digest in (*staged, other)
        ]

    assert len(compiled) == 2, "1.0.1 reused 1.0.0's compilation, 1.0.2 (another component) compiled"
    assert first.artifact_key == artifact_key(staged[0][1], engine_fingerprint())
    assert second.artifact_key == artifact_key(staged[1][1], engine_fingerprint())
    assert (first.sha256, first.size) == (second.sha256, second.size) != (third.sha256, third.size)
    assert store.exists(compiled_key(hashlib.sha256(COMPONENT).hexdigest(), engine_fingerprint()))
    await ActivityEnvironment().run(
        BundleActivities(store).discard_blobs, DiscardBlobsInput(keys=[first.artifact_key])
    )
    assert not store.exists(first.artifact_key)
    assert store.get(second.artifact_key) and store.size(second.artifact_key) == second.size
