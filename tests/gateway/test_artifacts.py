"""The gateway's resolved install carries the registry's record of the bundle's precompiled artifacts
(`bundles.precompiled`) in the execute envelope, so the runner, which cannot read Postgres, can check an
artifact before deserializing it: the recorded one is used, a planted one is not."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

import httpx
import pytest

from bundles.blobstore import FilesystemBlobStore, artifact_key
from runner.compile import engine_fingerprint, precompile
from tests.gateway.conftest import ECHO, HOSTILE, Gateway, Registry, RunnerProcess

pytestmark = pytest.mark.integration


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _artifact_loads(runner: RunnerProcess) -> float:
    text = httpx.get(f"{runner.url}/metrics").text
    found = re.search(r'^extplane_runner_component_load_bytes_count\{source="artifact"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def _recording(registry: Registry, stored: bytes) -> Any:
    """A `precompiled` callback: store `stored` as the bundle's artifact, record the genuine one."""
    genuine = precompile(ECHO)

    def record(chash: str) -> dict[str, Any]:
        key = artifact_key(chash, engine_fingerprint())
        FilesystemBlobStore(registry.data_dir / "blobs").put(key, stored)
        sha = hashlib.sha256(genuine).hexdigest()
        return {engine_fingerprint(): {"key": key, "sha256": sha, "size": len(genuine)}}

    return record


async def test_the_recorded_artifact_reaches_the_runner_and_is_used(
    gateway: Gateway, registry: Registry, shared_runner: RunnerProcess
) -> None:
    t = _tenant()
    await registry.install(
        t, "com.acme.precompiled", wasm=ECHO, precompiled=_recording(registry, precompile(ECHO))
    )
    token = await registry.token(t, "ext:read")
    before = _artifact_loads(shared_runner)
    resp = await gateway.call("GET", "/api/ext/com.acme.precompiled/teapot", token)
    assert resp.status_code == 200, resp.text
    assert _artifact_loads(shared_runner) == before + 1  # deserialized, not compiled


async def test_a_planted_artifact_is_not_run(gateway: Gateway, registry: Registry) -> None:
    # The blob store holds the hostile guest's artifact; the registry records the echo guest's.
    t = _tenant()
    planted = precompile(HOSTILE)
    await registry.install(t, "com.acme.planted", wasm=ECHO, precompiled=_recording(registry, planted))
    token = await registry.token(t, "ext:read")
    resp = await gateway.call("GET", "/api/ext/com.acme.planted/trap", token)
    assert resp.status_code == 200, resp.text  # the echo bundle, compiled; the hostile /trap would trap
