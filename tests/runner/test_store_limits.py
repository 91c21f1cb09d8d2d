"""The memory cap is one total per Store (linear memories plus tables), whatever a component declares.

Hostile component WAT guests (tests/runner/wat_guests.py) through the real runner process: 16 extra
memories in 16 core instances, and a memory plus a table each grown to what the limiter grants. Each
reports what it got; the next request on the same runner still succeeds.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.runner.runner_helpers import FIXTURES, RunnerProcess, envelope, manifest, publish
from tests.runner.wat_guests import MANY_MEMORIES, TABLE_AND_MEMORY

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def guests(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("pub")
    wasm = {
        "many-memories": MANY_MEMORIES,
        "table": TABLE_AND_MEMORY,
        "echo": (FIXTURES / "hostile.wasm").read_bytes(),
    }
    return {
        name: publish(runner_proc.data_dir, data, manifest(name=f"com.test.limits-{name}"), work)
        for name, data in wasm.items()
    }


async def _call(runner: RunnerProcess, env: dict[str, Any]) -> tuple[int, Any]:
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=env)
    return resp.status_code, resp.json()


async def _healthy_after(runner: RunnerProcess, chash: str) -> None:
    status, body = await _call(runner, envelope(chash, "/echo", body=b"still alive"))
    assert (status, base64.b64decode(body["body_b64"])) == (200, b"still alive"), body


async def test_extra_memories_do_not_multiply_the_cap(
    runner_proc: RunnerProcess, guests: dict[str, str]
) -> None:
    # Without a count limit each of the 17 memories got the whole 4 MiB: 68 MiB granted.
    status, body = await _call(runner_proc, envelope(guests["many-memories"], "/", limits={"memory_mb": 4}))
    granted = int(base64.b64decode(body["body_b64"]), 16) * 65536 if status == 200 else 0
    assert (status, body["error"] and body["error"]["code"], granted) == (422, "module_rejected", 0), body
    assert "linear memories" in body["error"]["message"]
    await _healthy_after(runner_proc, guests["echo"])


async def test_memory_and_tables_stay_under_the_cap_together(
    runner_proc: RunnerProcess, guests: dict[str, str]
) -> None:
    # Without a table limit table.grow was unbounded: 4M slots (32 MiB) on top of a full 16 MiB memory.
    status, body = await _call(runner_proc, envelope(guests["table"], "/", limits={"memory_mb": 16}))
    assert status == 200, body
    pages, slots = (int(part, 16) for part in base64.b64decode(body["body_b64"]).split())
    total = pages * 65536 + slots * 8  # a table slot is 8 bytes in wasmtime 50
    assert total <= 16 * MiB, (pages, slots)
    assert pages * 65536 >= 14 * MiB  # most of the cap is still there for linear memory
    await _healthy_after(runner_proc, guests["echo"])
