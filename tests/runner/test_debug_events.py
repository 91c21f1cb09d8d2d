"""Debug events with their context: guest logs, stdout/stderr capture cut at 8 KiB, runner failures.
In-process (the sink of a runner process is not observable from outside until the Redis sink lands)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundles.blobstore import FilesystemBlobStore
from runner._debug import InMemoryDebugSink
from runner._engine import Runtime
from runner._loader import ComponentCache
from schema.envelope import ExecuteRequest
from tests.runner.runner_helpers import (
    FIXTURES,
    GUESTS,
    envelope,
    in_process_runtime,
    manifest,
    publish,
    python_guest,
)


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with in_process_runtime() as rt:
        yield rt


def _load(rt: Runtime, tmp: Path, wasm: bytes, artifact: bytes | None = None) -> tuple[ComponentCache, str]:
    chash = publish(tmp, wasm, manifest(), tmp, artifact=artifact)
    return ComponentCache(rt.engine, FilesystemBlobStore(tmp / "blobs"), max_bytes=1 << 30), chash


def test_guest_log_and_failures_carry_context(runtime: Runtime, tmp_path: Path) -> None:
    cache, chash = _load(runtime, tmp_path, (FIXTURES / "hostile.wasm").read_bytes())
    sink = InMemoryDebugSink()
    env = ExecuteRequest.model_validate(envelope(chash, "/alloc", limits={"memory_mb": 4}, tenant="t-1"))
    outcome = runtime.run(cache.get(chash, artifacts=env.artifacts), env, sink)
    assert outcome.error is not None and outcome.error.code.value == "memory_exhausted"
    events = sink.events(request_id=env.context.request_id)
    assert [(e.stream, e.level) for e in events] == [("log", "error"), ("runner", "error")]
    assert events[0].message == "out of memory"
    assert all(
        (e.tenant, e.extension, e.install_id, e.version, e.content_hash)
        == ("t-1", "com.test.guest", env.context.install_id, "1.0.0", chash)
        for e in events
    )


@pytest.mark.slow
@pytest.mark.timeout(900)  # may build the Python guest on a cold cache
def test_stderr_flood_is_cut_at_8_kib(runtime: Runtime, tmp_path: Path) -> None:
    wasm, artifact = python_guest(GUESTS / "pyhostile")
    cache, chash = _load(runtime, tmp_path, wasm, artifact)
    sink = InMemoryDebugSink()
    env = ExecuteRequest.model_validate(envelope(chash, "/stderr-flood"))
    outcome = runtime.run(cache.get(chash, artifacts=env.artifacts), env, sink)
    assert (outcome.status, outcome.body, outcome.error) == (200, b"flooded", None)
    [event] = [e for e in sink.events(request_id=env.context.request_id) if e.stream == "stderr"]
    assert event.truncated and len(event.message.encode()) == 8 * 1024
    assert base64.b64encode(outcome.body)
