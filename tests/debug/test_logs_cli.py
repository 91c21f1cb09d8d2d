"""`extctl logs` as a user runs it (a subprocess) against the real gateway."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.debug.conftest import ADMIN_TOKEN, ROOT, Stack, eventually
from tests.debug.test_debug_stream import names

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    env.update(extra, PYTHONPATH=str(ROOT), COLUMNS="200")
    return env


def extctl(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        cwd=cwd,  # not the repo: no .extplane/dev.env is read
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_extctl_logs_follows_and_prints(stack: Stack, tmp_path: Path) -> None:
    tenant, ext = names()
    install_id = await stack.install(tenant, ext)
    token = await stack.token(tenant, "ext:read", "ext:debug")
    env = {"EXT_GATEWAY_URL": stack.gateway.url, "EXT_ADMIN_TOKEN": ADMIN_TOKEN}

    # Follow as the operator (admin token acting for the tenant), one JSON event per line.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "logs",
        ext,
        "--tenant",
        tenant,
        "--tail",
        "0",
        "--json",
        cwd=tmp_path,
        env=_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None

        async def call_until_seen() -> dict[str, object] | None:
            # The subscription starts asynchronously: call until one of our events is printed.
            resp = await stack.call(token, ext, "/chatty?tag=cli")
            assert resp.status_code == 200
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 2.0)  # type: ignore[union-attr]
            except TimeoutError:
                return None
            doc: dict[str, object] = json.loads(line)
            return doc

        event = await eventually(call_until_seen, deadline_s=30)
        assert event["tenant"] == tenant and event["install_id"] == install_id
        assert str(event["message"]).strip() in ("log cli", "stdout cli", "stderr cli")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)

    # Once, human-readable, with a tenant token; only one request's events.
    out = extctl(tmp_path, {**env, "EXT_TOKEN": token}, "logs", ext, "--tenant", tenant, "--no-follow")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(" INFO  log    req=" in line and line.endswith("log cli") for line in lines), lines
    assert any("stderr" in line and line.endswith("stderr cli") for line in lines), lines

    # The token's tenant wins: --tenant naming another tenant is refused, not silently replaced.
    other = await stack.token(f"t-{tenant}", "ext:debug")
    out = extctl(tmp_path, env, "logs", ext, "--tenant", tenant, "--token", other, "--no-follow")
    assert out.returncode == 1 and out.stderr.startswith("error: tenant_mismatch: "), out.stderr
    out = extctl(tmp_path, {"EXT_ADMIN_TOKEN": ADMIN_TOKEN}, "logs", ext, "--tenant", tenant)
    assert out.returncode == 1 and "EXT_GATEWAY_URL" in out.stderr
