"""Python guests built with the SDK (componentize-py), through the real runner process and Postgres:
the hello sample end to end, storage isolation between installs, and hostile Python guests."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.runner.runner_helpers import (
    GUESTS,
    ROOT,
    RunnerProcess,
    create_install,
    envelope,
    manifest,
    publish,
    python_guest,
)

# The first test of the module builds Python guests (componentize + precompile, ~30 s each on 2 cores,
# cached in tests/.artifacts): beyond the suite's 60 s per-test budget on a cold cache.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
HELLO_CAPS = ["cap:log.emit", "cap:context.read", "cap:storage.kv"]


@pytest.fixture(scope="module")
def hello(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    wasm, artifact = python_guest(ROOT / "examples" / "hello")
    doc = json.loads((ROOT / "examples" / "hello" / "manifest.json").read_text())
    # Only the handler is under test here (publish() packs manifest + wasm): drop the sample's UI and
    # cap:ui.proxy, which a manifest may request only with a UI (tests/ui serves the UI).
    doc.pop("ui", None)
    doc["capabilities"] = [c for c in doc["capabilities"] if c != "cap:ui.proxy"]
    return publish(runner_proc.data_dir, wasm, doc, tmp_path_factory.mktemp("pub"), artifact=artifact)


@pytest.fixture(scope="module")
def pyhostile(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    wasm, artifact = python_guest(GUESTS / "pyhostile")
    return publish(
        runner_proc.data_dir,
        wasm,
        manifest(name="com.test.pyhostile"),
        tmp_path_factory.mktemp("pub"),
        artifact=artifact,
    )


async def _call(runner: RunnerProcess, env: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=env)
    body = resp.json()
    payload = base64.b64decode(body["body_b64"]) if body.get("body_b64") else b""
    try:
        decoded: Any = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload
    return resp.status_code, body, decoded


async def test_hello_echo(runner_proc: RunnerProcess, hello: str) -> None:
    env = envelope(hello, "/echo", body=b'{"ping": 1}', query="a=1", extension="com.extplane.hello")
    status, body, data = await _call(runner_proc, env)
    assert (status, body["status"]) == (200, 200), body
    assert data["body"] == '{"ping": 1}' and data["query"] == "a=1" and data["method"] == "POST"
    assert ["x-test", "1"] in data["headers"]
    assert data["request_id"] == env["context"]["request_id"]


async def test_hello_counter_increments_per_install_and_installs_are_isolated(
    runner_proc: RunnerProcess, runner_db_url: str, hello: str
) -> None:
    a = await create_install(runner_db_url, hello, tenant="tenant-a", extension="com.extplane.hello")
    b = await create_install(runner_db_url, hello, tenant="tenant-b", extension="com.extplane.hello")
    seen = []
    for _ in range(3):
        _, body, data = await _call(
            runner_proc, envelope(hello, "/counter", install_id=a, granted=HELLO_CAPS)
        )
        assert body["status"] == 200, body
        seen.append(data["counter"])
    assert seen == [1, 2, 3]
    _, _, data = await _call(
        runner_proc, envelope(hello, "/counter", install_id=b, granted=HELLO_CAPS, tenant="tenant-b")
    )
    assert data["counter"] == 1  # install b does not see install a's key
    _, _, data = await _call(
        runner_proc, envelope(hello, "/counter", method="GET", install_id=a, granted=HELLO_CAPS)
    )
    assert data["counter"] == 3


async def test_storage_without_grant_is_denied(
    runner_proc: RunnerProcess, runner_db_url: str, hello: str
) -> None:
    a = await create_install(runner_db_url, hello, tenant="tenant-c", extension="com.extplane.hello")
    status, body, data = await _call(runner_proc, envelope(hello, "/counter", install_id=a))
    assert status == 200
    assert body["status"] == 500 and data == {"error": "handler_error"}  # the guest got `denied` and raised


async def test_stderr_flood_is_survivable(runner_proc: RunnerProcess, pyhostile: str) -> None:
    status, body, data = await _call(runner_proc, envelope(pyhostile, "/stderr-flood"))
    assert (status, body["status"], data) == (200, 200, b"flooded")


async def test_python_memory_bomb(runner_proc: RunnerProcess, pyhostile: str) -> None:
    status, body, _ = await _call(runner_proc, envelope(pyhostile, "/alloc", limits={"memory_mb": 48}))
    assert (status, body["error"]["code"]) == (500, "memory_exhausted"), body
    status, body, data = await _call(runner_proc, envelope(pyhostile, "/raise"))
    assert (status, body["status"], data) == (200, 500, {"error": "handler_error"})


async def test_python_guest_below_its_minimum_memory(runner_proc: RunnerProcess, pyhostile: str) -> None:
    status, body, _ = await _call(runner_proc, envelope(pyhostile, "/raise", limits={"memory_mb": 2}))
    assert (status, body["error"]["code"]) == (500, "memory_exhausted"), body


async def test_host_apis_with_list_and_record_values(
    runner_proc: RunnerProcess, runner_db_url: str, pyhostile: str
) -> None:
    install = await create_install(
        runner_db_url, pyhostile, tenant="tenant-probe", extension="com.test.pyhostile"
    )
    from tests.runner.runner_helpers import sealed_secrets

    env = envelope(
        pyhostile,
        "/probe",
        query="kv=1",
        install_id=install,
        granted=["cap:storage.kv", "cap:secrets.get"],
        user={"id": "u1", "email": "u1@example.com", "name": "U One", "kind": "internal"},
    )
    env["secrets"] = sealed_secrets(runner_proc.keyring, install, {"b": "2", "a": "1"})
    status, body, data = await _call(runner_proc, env)
    assert (status, body["status"]) == (200, 200), body
    assert data["user"] == ["u1", "u1@example.com", "U One", "internal"]
    assert data["secret_keys"] == ["a", "b"]
    assert data["logged"] == 100  # EXT_MAX_LOG_EVENTS: the rest answer rate-limited
    assert data["kv"] == [f"k{i}" for i in range(7)]  # paged by 3 with the cursor
    assert data["after_delete"] == {"error": "not-found"}
    # without grants or a user: typed denials and "no user", never a trap
    _, body, data = await _call(runner_proc, envelope(pyhostile, "/probe"))
    assert data == {"user": None, "secret_keys": {"error": "denied"}, "logged": 100}
