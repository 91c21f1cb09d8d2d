"""The runner deserializes a precompiled artifact only when its bytes hash to the sha256 the registry
recorded (the envelope's `artifacts`), and it never writes the blob store.

A deserialized artifact is native code, so the proof is behavioural: the artifact planted under the
echo bundle's key is the precompiled *hostile* guest, whose `/trap` traps. If it ran, the call traps;
if the runner compiled the hash-checked bundle instead, the echo guest answers.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from bundles.blobstore import FilesystemBlobStore, artifact_key
from runner.compile import engine_fingerprint, precompile
from tests.runner.runner_helpers import FIXTURES, RunnerProcess, envelope, manifest, publish

ECHO = (FIXTURES / "echo.wasm").read_bytes()


def _digest(artifact: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(artifact).hexdigest(), "size": len(artifact)}


def _planted(runner: RunnerProcess, work: Path, name: str) -> tuple[str, dict[str, Any]]:
    """An echo bundle whose artifact slot holds the hostile guest; returns (hash, the genuine digest)."""
    chash = publish(runner.data_dir, ECHO, manifest(name=name), work)
    store = FilesystemBlobStore(runner.data_dir / "blobs")
    store.put(artifact_key(chash, engine_fingerprint()), precompile((FIXTURES / "hostile.wasm").read_bytes()))
    return chash, _digest(precompile(ECHO))


async def _echo_of(runner: RunnerProcess, env: dict[str, Any]) -> tuple[int, Any]:
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=env)
    body = resp.json()
    return resp.status_code, base64.b64decode(body["body_b64"]) if resp.status_code == 200 else body


async def _artifact_loads(runner: RunnerProcess) -> float:
    text = httpx.get(f"{runner.url}/metrics").text
    found = re.search(r'^extplane_runner_component_load_bytes_count\{source="artifact"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


@pytest.mark.integration
async def test_an_artifact_not_matching_its_record_is_not_deserialized(
    runner_proc: RunnerProcess, work_dir: Path
) -> None:
    chash, genuine = _planted(runner_proc, work_dir, "com.test.planted-a")
    env = envelope(chash, "/trap", body=b"bundle", artifacts={engine_fingerprint(): genuine})
    assert await _echo_of(runner_proc, env) == (200, b"bundle")


@pytest.mark.integration
async def test_an_artifact_without_a_record_is_not_deserialized(
    runner_proc: RunnerProcess, work_dir: Path
) -> None:
    chash, genuine = _planted(runner_proc, work_dir, "com.test.planted-b")
    # A record for another engine is no record for this one.
    env = envelope(chash, "/trap", body=b"bundle", artifacts={"wasmtime-0.0.0-other": genuine})
    assert await _echo_of(runner_proc, env) == (200, b"bundle")


@pytest.mark.integration
async def test_the_recorded_artifact_is_deserialized(runner_proc: RunnerProcess, work_dir: Path) -> None:
    before = await _artifact_loads(runner_proc)
    chash = publish(
        runner_proc.data_dir, ECHO, manifest(name="com.test.recorded"), work_dir, artifact=precompile(ECHO)
    )
    assert await _echo_of(runner_proc, envelope(chash, "/x", body=b"fast")) == (200, b"fast")
    assert await _artifact_loads(runner_proc) == before + 1


@pytest.mark.integration
async def test_compiling_never_writes_the_blob_store(runner_proc: RunnerProcess, work_dir: Path) -> None:
    chash = publish(runner_proc.data_dir, ECHO, manifest(name="com.test.compiled"), work_dir)
    root = runner_proc.data_dir / "blobs"
    files = {p for p in root.rglob("*") if p.is_file()}
    assert await _echo_of(runner_proc, envelope(chash, "/x", body=b"slow")) == (200, b"slow")
    assert {p for p in root.rglob("*") if p.is_file()} == files
    assert not FilesystemBlobStore(root).exists(artifact_key(chash, engine_fingerprint()))


@pytest.mark.parametrize("local", [True, False], ids=["mapped-file", "remote-store"])
def test_the_loader_checks_the_artifact_whatever_the_store(tmp_path: Path, local: bool) -> None:
    """In process, with a local store (copied from the file) and one without local paths (bytes)."""
    from bundles.blobstore import InMemoryBlobStore, bundle_key
    from bundles.hashing import content_hash
    from runner._loader import ComponentCache
    from runner.compile import new_engine
    from schema.envelope import ArtifactDigest
    from tests.runner.runner_helpers import _bundle_bytes

    store = FilesystemBlobStore(tmp_path) if local else InMemoryBlobStore()
    genuine, planted = precompile(ECHO), precompile((FIXTURES / "hostile.wasm").read_bytes())
    record = {engine_fingerprint(): ArtifactDigest(**_digest(genuine))}
    loaded = {}
    for name, artifact in (("genuine", genuine), ("planted", planted), ("longer", genuine + b"\0")):
        data = _bundle_bytes(ECHO, f"com.test.loader-{name}")
        chash = content_hash(data)
        store.put(bundle_key(chash), data)
        store.put(artifact_key(chash, engine_fingerprint()), artifact)
        loaded[name] = ComponentCache(new_engine(), store, max_bytes=1 << 30).get(chash, artifacts=record)
    assert {name: entry.precompiled for name, entry in loaded.items()} == {
        "genuine": True,
        "planted": False,
        "longer": False,
    }
