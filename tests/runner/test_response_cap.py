"""The response cap covers header bytes and the body together, and is checked before the host turns a
lifted response into Python objects: a guest's strings may all alias one buffer, so its memory cap
does not bound what the host would build (tests/runner/wat_guests.py ALIAS_HEADERS)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from tests.runner.runner_helpers import RunnerProcess, envelope, manifest, publish
from tests.runner.wat_guests import ALIAS_HEADERS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alias(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("pub")
    return publish(runner_proc.data_dir, ALIAS_HEADERS, manifest(name="com.test.alias"), work)


async def _call(runner: RunnerProcess, chash: str, mode: str) -> tuple[int, Any]:
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=envelope(chash, "/", query=mode))
    return resp.status_code, resp.json()


async def test_small_response_with_headers_passes(runner_proc: RunnerProcess, alias: str) -> None:
    status, body = await _call(runner_proc, alias, "o")
    assert (status, body["status"], body["headers"]) == (200, 200, [["x-h", "xx"]]), body
    assert base64.b64decode(body["body_b64"]) == b"ok"


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("a", "exceed 1048576 bytes"),  # 64 headers x the same 1 MiB: 64 MiB from 1 MiB of memory
        ("s", "exceed 1048576 bytes"),  # a 700 KiB header + a 700 KiB body: each fits, not both
        ("n", "more than 256 response headers"),  # 100,000 one-byte headers
    ],
    ids=["aliased-header-values", "headers-plus-body", "header-count"],
)
async def test_oversized_responses_are_refused(
    runner_proc: RunnerProcess, alias: str, mode: str, why: str
) -> None:
    started = time.monotonic()
    status, body = await _call(runner_proc, alias, mode)
    elapsed = time.monotonic() - started
    assert (status, body["error"] and body["error"]["code"]) == (500, "response_too_large"), (
        status,
        str(body)[:300],
    )
    assert why in body["error"]["message"]
    # Converting 100,000 header records took ~38 s before the lift was bounded: not a latency check.
    assert elapsed < 15.0
    status, body = await _call(runner_proc, alias, "o")
    assert status == 200
