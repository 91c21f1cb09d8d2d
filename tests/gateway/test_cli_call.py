"""`extctl call` against the gateway process, as a user runs it (a subprocess, env from the caller)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.gateway.conftest import ADMIN_TOKEN, ROOT, Registry, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def extctl(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    full.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        cwd=cwd,  # not the repo: no .extplane/dev.env of a running dev stack is read
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_extctl_call(gateway_proc: str, registry: Registry, tmp_path: Path) -> None:
    a, b = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    await registry.install(a, "com.acme.app")
    token_a = await registry.token(a, "ext:read", "ext:write")
    token_b = await registry.token(b, "ext:read", "ext:write")
    env = {"EXT_GATEWAY_URL": gateway_proc, "EXT_ADMIN_TOKEN": ADMIN_TOKEN}

    # Operator impersonation with the admin token (no tenant token given).
    out = extctl(tmp_path, env, "call", "com.acme.app", "/reflect/status?x=1", "--tenant", a)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("GET /reflect/status?x=1\n")

    # A tenant token; --data makes it a POST with a JSON body.
    out = extctl(
        tmp_path,
        {**env, "EXT_TOKEN": token_a},
        "--json",
        "call",
        "com.acme.app",
        "reflect/items/3",
        "--tenant",
        a,
        "--data",
        '{"n": 1}',
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == 200 and len(doc["request_id"]) == 32
    assert doc["body"].startswith("POST /reflect/items/3?") and doc["body"].endswith('{"n": 1}')

    # --tenant is checked against the token, never silently replaced by it.
    out = extctl(tmp_path, env, "call", "com.acme.app", "/reflect/status", "--tenant", a, "--token", token_b)
    assert out.returncode == 1
    assert out.stderr.startswith("error: tenant_mismatch: ")

    out = extctl(tmp_path, env, "call", "com.acme.app", "/teapot", "--tenant", a)
    assert (out.returncode, out.stderr.strip()) == (1, "error: handler_error: HTTP 418: short and stout")

    out = extctl(tmp_path, env, "call", "com.acme.app", "/x", "--tenant", a, "--data", "{nope")
    assert out.returncode == 1 and out.stderr.startswith("error: invalid_request: --data is not valid JSON")

    out = extctl(tmp_path, {"EXT_ADMIN_TOKEN": ADMIN_TOKEN}, "call", "com.acme.app", "/x", "--tenant", a)
    assert out.returncode == 1 and "EXT_GATEWAY_URL" in out.stderr

    # The operator call left its execution_log row under the tenant.
    async def rows() -> int:
        return int(
            await registry.pool.fetchval(
                "SELECT count(*) FROM execution_log WHERE tenant_id = $1 AND endpoint = '/reflect/status'", a
            )
        )

    assert await eventually(rows) >= 1
