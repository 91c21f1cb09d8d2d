"""Hostile C guests through the real runner process: each is stopped and classified, and the next
request on the same runner succeeds. Wall-clock bounds are loose (STYLE.md 9)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from tests.runner.runner_helpers import FIXTURES, RunnerProcess, envelope, manifest, publish

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hostile(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    wasm = (FIXTURES / "hostile.wasm").read_bytes()
    return publish(runner_proc.data_dir, wasm, manifest(), tmp_path_factory.mktemp("pub"))


async def _call(runner: RunnerProcess, env: dict[str, Any]) -> tuple[int, Any]:
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=env)
    return resp.status_code, resp.json()


async def _healthy_after(runner: RunnerProcess, chash: str) -> None:
    status, body = await _call(runner, envelope(chash, "/echo", body=b"still alive"))
    assert status == 200, body
    assert base64.b64decode(body["body_b64"]) == b"still alive"


async def test_echo_roundtrip(runner_proc: RunnerProcess, hostile: str) -> None:
    status, body = await _call(runner_proc, envelope(hostile, "/echo", body=b"hi there"))
    assert status == 200
    assert body["status"] == 200 and body["error"] is None
    assert base64.b64decode(body["body_b64"]) == b"hi there"
    assert body["metrics"]["fuel_consumed"] > 0


@pytest.mark.parametrize(
    ("path", "limits", "http_status", "code", "max_seconds"),
    [
        ("/loop", {"fuel": 50_000_000, "timeout_ms": 20_000}, 500, "fuel_exhausted", 10.0),
        ("/loop", {"fuel": 10**15, "timeout_ms": 300}, 504, "deadline_exceeded", 10.0),
        ("/alloc", {"memory_mb": 8}, 500, "memory_exhausted", 10.0),
        ("/recurse", {}, 500, "guest_trap", 10.0),
        ("/trap", {}, 500, "guest_trap", 10.0),
        ("/big", {}, 500, "response_too_large", 10.0),
    ],
    ids=["fuel", "deadline", "memory", "recursion", "unreachable", "oversized-response"],
)
async def test_hostile_guest_is_stopped_and_classified(
    runner_proc: RunnerProcess,
    hostile: str,
    path: str,
    limits: dict[str, int],
    http_status: int,
    code: str,
    max_seconds: float,
) -> None:
    started = time.monotonic()
    status, body = await _call(runner_proc, envelope(hostile, path, limits=limits))
    elapsed = time.monotonic() - started
    assert (status, body["error"]["code"]) == (http_status, code), body
    assert elapsed < max_seconds
    await _healthy_after(runner_proc, hostile)


async def test_deadline_stop_is_not_early(runner_proc: RunnerProcess, hostile: str) -> None:
    started = time.monotonic()
    status, body = await _call(
        runner_proc, envelope(hostile, "/loop", limits={"fuel": 10**15, "timeout_ms": 300})
    )
    assert status == 504, body
    assert time.monotonic() - started >= 0.3


async def test_trap_codes_are_reported(runner_proc: RunnerProcess, hostile: str) -> None:
    _, body = await _call(runner_proc, envelope(hostile, "/recurse"))
    assert "call stack exhausted" in body["error"]["message"]
    _, body = await _call(runner_proc, envelope(hostile, "/trap"))
    assert "unreachable" in body["error"]["message"]


async def test_capability_not_granted_is_a_typed_denial(runner_proc: RunnerProcess, hostile: str) -> None:
    status, body = await _call(runner_proc, envelope(hostile, "/secret"))
    assert status == 200
    assert (body["status"], base64.b64decode(body["body_b64"])) == (403, b"denied")
    await _healthy_after(runner_proc, hostile)


async def test_granted_secret_is_decrypted(runner_proc: RunnerProcess, hostile: str) -> None:
    from tests.runner.runner_helpers import sealed_secrets

    env = envelope(hostile, "/secret", granted=["cap:secrets.get"])
    install_id = env["context"]["install_id"]
    env["secrets"] = sealed_secrets(runner_proc.keyring, install_id, {"token": "s3cr3t"})
    status, body = await _call(runner_proc, env)
    assert (status, body["status"], base64.b64decode(body["body_b64"])) == (200, 200, b"s3cr3t")
    # sealed for another install: refused, not decrypted
    other = envelope(hostile, "/secret", granted=["cap:secrets.get"])
    other["secrets"] = sealed_secrets(runner_proc.keyring, "another-install", {"token": "x"})
    _, body = await _call(runner_proc, other)
    assert body["status"] == 500


async def test_context_reaches_the_guest(runner_proc: RunnerProcess, hostile: str) -> None:
    env = envelope(hostile, "/context")
    _, body = await _call(runner_proc, env)
    assert base64.b64decode(body["body_b64"]).decode() == env["context"]["request_id"]


async def test_auth_envelope_and_module_errors(runner_proc: RunnerProcess, hostile: str) -> None:
    async with runner_proc.client() as client:
        resp = await client.post(
            "/v1/execute", json=envelope(hostile, "/echo"), headers={"x-runner-auth": "nope"}
        )
        assert resp.status_code == 401
        resp = await client.post("/v1/execute", content=b"{not json")
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_request")
        resp = await client.post("/v1/execute", json=envelope(hostile, "/echo", granted=["cap:root.shell"]))
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_request")
        too_big = envelope(hostile, "/echo", body=b"x" * (10 * 1024 * 1024 + 1))
        resp = await client.post("/v1/execute", json=too_big)
        assert (resp.status_code, resp.json()["error"]["code"]) == (400, "invalid_request")
        resp = await client.post("/v1/execute", json=envelope("sha256:" + "0" * 64, "/echo"))
        assert (resp.status_code, resp.json()["error"]["code"]) == (404, "module_not_found")


async def test_tampered_bundle_is_rejected(runner_proc: RunnerProcess, work_dir: Path) -> None:
    from bundles.blobstore import FilesystemBlobStore, bundle_key

    chash = publish(
        runner_proc.data_dir,
        (FIXTURES / "echo.wasm").read_bytes(),
        manifest(name="com.test.tamper"),
        work_dir,
    )
    store = FilesystemBlobStore(runner_proc.data_dir / "blobs")
    store.put(bundle_key(chash), store.get(bundle_key(chash)) + b"\0")
    status, body = await _call(runner_proc, envelope(chash, "/echo"))
    assert (status, body["error"]["code"]) == (422, "module_rejected")


async def test_metrics_count_outcomes(runner_proc: RunnerProcess, hostile: str) -> None:
    await _call(runner_proc, envelope(hostile, "/trap"))
    async with runner_proc.client() as client:
        text = (await client.get("/metrics")).text
    assert 'extplane_runner_executions_total{outcome="guest_trap"}' in text
    assert "extplane_runner_execution_seconds_bucket" in text
    assert "extplane_runner_component_cache_hits_total" in text
    assert "extplane_runner_queue_depth" in text


async def test_concurrent_requests_get_their_own_context(runner_proc: RunnerProcess, hostile: str) -> None:
    """Two executor threads interleave host calls (context, denied secrets, traps); no crosstalk."""
    import asyncio

    # Spread over tenants: one tenant alone may hold only its share (EXT_TENANT_SHARE) of the slots.
    envs = [envelope(hostile, ("/context", "/secret", "/trap")[i % 3], tenant=f"t{i % 4}") for i in range(60)]
    async with runner_proc.client() as client:
        responses = await asyncio.gather(*(client.post("/v1/execute", json=e) for e in envs))
    for env, resp in zip(envs, responses, strict=True):
        body = resp.json()
        path = env["request"]["path"]
        if path == "/context":
            assert base64.b64decode(body["body_b64"]).decode() == env["context"]["request_id"]
        elif path == "/secret":
            assert (body["status"], base64.b64decode(body["body_b64"])) == (403, b"denied")
        else:
            assert (resp.status_code, body["error"]["code"]) == (500, "guest_trap")
