"""runner._wasi_block: a guest's WASI sleep returns at once instead of holding the runner's thread
past the call's deadline (the finding in docs/security.md, "Known limits")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bundles.blobstore import FilesystemBlobStore
from runner._debug import InMemoryDebugSink
from runner._engine import Runtime
from runner._loader import ComponentCache
from schema.envelope import ExecuteRequest
from tests.runner.runner_helpers import GUESTS, envelope, in_process_runtime, manifest, publish, python_guest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with in_process_runtime() as rt:
        yield rt


@pytest.mark.timeout(900)  # may build the Python guest on a cold cache
def test_a_guest_sleep_does_not_block_past_the_deadline(runtime: Runtime, tmp_path: Path) -> None:
    """The guest asks to sleep 30 s with a 2 s deadline. Blocking in the host, it held this thread
    for the 30 s and was then answered deadline_exceeded; now the sleep returns and the guest
    answers, by its own clock, having slept less than it asked."""
    wasm, artifact = python_guest(GUESTS / "pyhostile")
    chash = publish(tmp_path, wasm, manifest(), tmp_path, artifact=artifact)
    cache = ComponentCache(runtime.engine, FilesystemBlobStore(tmp_path / "blobs"), max_bytes=1 << 30)
    env = ExecuteRequest.model_validate(envelope(chash, "/sleep", query="s=30", limits={"timeout_ms": 2_000}))
    outcome = runtime.run(cache.get(chash, artifacts=env.artifacts), env, InMemoryDebugSink())
    assert (outcome.status, outcome.error) == (200, None)
    assert float(outcome.body) < 30.0


def test_the_shadowed_interface_is_the_one_wasmtime_defines() -> None:
    """If a wasmtime upgrade moves wasi:io/poll to another version, shadowing ours would only add
    an unused instance; this names the version the bundled library carries."""
    import wasmtime

    from runner._wasi_block import WASI_POLL

    library = next(Path(wasmtime.__file__).parent.rglob("_libwasmtime.*"))
    assert WASI_POLL.encode() in library.read_bytes()
