"""No secret reaches a log: a full dev stack (every app a real process, logs under `<root>/logs`, as
`extctl dev up` writes them) is made to fail a `secrets set` in the worker and to answer 500 from the
operator API; then every log file is searched for the secret value, the master key (raw bytes, base64,
hex) and the bearer tokens. Tracebacks used to render local variables (structlog's ConsoleRenderer
with rich), which put the plaintext secret, the keyring and the ASGI scope's `Authorization` header
into the worker and API logs.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from cli.devstack.procs import free_port, stop_pid
from core.crypto import Keyring
from tests.faults.conftest import run_stack
from tests.faults.harness import FaultStack, clean_environ, eventually
from tests.support.databases import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]


def _forms(raw: bytes) -> list[str]:
    """How key bytes can show up in text: repr, base64 (both alphabets), hex; each also as the prefix
    of its first 9 bytes (72 bits: no false hit), since a renderer may cut a long value short."""
    forms = [
        repr(raw)[2:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]
    head = raw[:9]
    return forms + [repr(head)[2:-1], base64.b64encode(head).decode(), head.hex()]


def _leaks(root: Path, needles: dict[str, str]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.log")):
        text = path.read_text(errors="replace")
        found += [f"{what} in {path.name}" for what, needle in needles.items() if needle in text]
    return found


@pytest.fixture
def leak_stack(tmp_path: Path, database_server_url: str) -> Iterator[FaultStack]:
    yield from run_stack(tmp_path / "stack", clean_environ(database_server=database_server_url))


async def test_failed_secret_set_and_api_500_leak_nothing_into_any_log(leak_stack: FaultStack) -> None:
    fs = leak_stack
    secret_value = "sk-live-" + uuid.uuid4().hex
    user_token = "ext_leaktest_" + uuid.uuid4().hex
    keyring = Keyring.parse(fs.state()["secrets"]["master_keys"])
    needles = {"secret value": secret_value, "admin token": fs.env["EXT_ADMIN_TOKEN"], "token": user_token}
    for version, raw in keyring.keys.items():
        needles |= {f"master key {version} ({i})": form for i, form in enumerate(_forms(raw))}

    tenant, name = await fs.ready_extension("t1", "com.faults.leak")
    conn = await asyncpg.connect(fs.env["EXT_DATABASE_URL"])
    try:
        # The secrets activity fails after it opened the secret map (its registry write has no table):
        # the worker logs each failed attempt with its traceback, where the plaintext map is a local.
        await conn.execute("ALTER TABLE install_secrets RENAME TO install_secrets_gone")
    finally:
        await conn.close()
    async with fs.api(timeout=5.0) as api:
        # The change keeps retrying in the worker; the API would wait for it, this caller does not.
        with pytest.raises(httpx.ReadTimeout):
            await api.put(
                f"/v1/tenants/{tenant}/installs/{name}/secrets", json={"secrets": {"api_key": secret_value}}
            )
    async with fs.api() as api:
        # A bug in the operator API: a registry table is gone, the route raises, the answer is 500.
        conn = await asyncpg.connect(fs.env["EXT_DATABASE_URL"])
        try:
            await conn.execute("ALTER TABLE extensions RENAME TO extensions_gone")
            await conn.execute("ALTER TABLE api_tokens RENAME TO api_tokens_gone")
        finally:
            await conn.close()
        resp = await api.get("/v1/extensions")
        assert resp.status_code == 500, resp.text
        resp = await api.get("/v1/extensions", headers={"authorization": f"Bearer {user_token}"})
        assert resp.status_code == 500, resp.text

    logs = fs.root / "logs"

    async def logged() -> bool:
        worker = (logs / "worker.log").read_text(errors="replace")
        api_log = (logs / "api.log").read_text(errors="replace")
        return "install_secrets" in worker and api_log.count("unhandled_error") >= 2

    await eventually(logged, timeout=30, what="the failures are logged")
    leaks = _leaks(logs, needles)
    assert leaks == [], leaks
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in logs.iterdir() if p.is_file()}
    assert modes and all(m & 0o077 == 0 for m in modes.values()), modes


async def test_prod_operator_api_logs_json_without_headers(tmp_path: Path, database_server_url: str) -> None:
    """In prod the log is JSON lines; a 500's traceback names no local, so no header value."""
    admin = "prod-admin-" + uuid.uuid4().hex
    keys = Keyring.generate_entry(1)
    port = free_port()
    log = tmp_path / "logs" / "api.log"
    log.parent.mkdir(parents=True)
    async with scratch_database(database_server_url, "extplane_leak") as db_url:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute("ALTER TABLE extensions RENAME TO extensions_gone")
        finally:
            await conn.close()
        env = {
            **clean_environ(),
            "PYTHONPATH": str(REPO),
            "EXT_ENV": "prod",
            "EXT_DATABASE_URL": db_url,
            "EXT_TEMPORAL_ADDRESS": os.environ["EXT_TEST_TEMPORAL_ADDRESS"],
            "EXT_ADMIN_TOKEN": admin,
            "EXT_RUNNER_AUTH": "prod-runner-" + uuid.uuid4().hex,
            "EXT_MASTER_KEYS": keys,
            "EXT_UI_SESSION_SECRET": "prod-ui-" + uuid.uuid4().hex,
        }
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.operator", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:

                async def healthy() -> bool:
                    try:
                        return (await c.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(healthy, timeout=60, what="operator API up")
                resp = await c.get("/v1/extensions", headers={"authorization": f"Bearer {admin}"})
                assert resp.status_code == 500, resp.text

            async def logged() -> bool:
                return "unhandled_error" in log.read_text(errors="replace")

            await eventually(logged, timeout=30, what="the 500 is logged")
        finally:
            stop_pid(proc.pid)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    failure = next(r for r in records if r.get("event") == "unhandled_error")
    assert failure.get("exception"), failure  # the traceback is there, as structured frames
    raw = Keyring.parse(keys).keys[1]
    needles = {"admin token": admin} | {f"master key ({i})": f for i, f in enumerate(_forms(raw))}
    assert _leaks(log.parent, needles) == []
