"""The operator commands of extctl against the real operator API (uvicorn on a free port, in a thread)
backed by Postgres, Temporal and an in-process worker. extctl runs as a subprocess, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from temporalio.client import Client
from temporalio.service import RPCError

from api.operator.app import create_app
from api.operator.settings import OperatorSettings
from bundles.signing import private_key_to_pem
from schema.temporal import manual_rotation_workflow_id

# data_dir, keyring, settings, temporal_client, worker: the operator-API fixtures shared with tests/api.
from tests.api.conftest import (  # noqa: F401
    ADMIN_TOKEN,
    bearer,
    control_workers,
    data_dir,
    keyring,
    settings,
    signed_bundle,
    temporal_client,
    trust_via_api,
    worker,
)
from tests.api.test_master_key import (
    ROTATED,
    data_key_versions,
    end_workflows,
    install_with_secrets,
)
from tests.workflows.helpers import Signer, fixed_keyring, unique_name

# Each extctl run is a fresh interpreter (~1 s to import); on a loaded 2-core machine a test of several
# commands plus the workflows they run needs more than the suite's default 60 s.
pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_url(settings: OperatorSettings) -> Iterator[str]:  # noqa: F811
    """The operator API served by uvicorn in a thread (its own event loop), on a socket bound here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "operator API did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Extctl:
    env: dict[str, str]
    cwd: Path

    async def __call__(self, *args: str, ok: bool = True) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            *args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=50)
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if ok:
            assert result.code == 0, f"extctl {' '.join(args)} failed: {result.stderr}"
        return result


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.fixture
def extctl(api_url: str, tmp_path: Path) -> Extctl:
    cwd = tmp_path / "cwd"
    cwd.mkdir()  # no .extplane/dev.env here: the environment is the only source
    return Extctl(env=_env(EXT_API_URL=api_url, EXT_ADMIN_TOKEN=ADMIN_TOKEN), cwd=cwd)


@pytest.fixture
async def tenant(temporal_client: Client) -> AsyncIterator[str]:  # noqa: F811
    t = f"t-{uuid.uuid4().hex[:10]}"
    yield t
    async for wf in temporal_client.list_workflows(f"WorkflowId STARTS_WITH 'install/{t}/'"):
        try:
            await temporal_client.get_workflow_handle(wf.id).terminate("test finished")
        except RPCError:
            pass


def _write_bundle(tmp: Path, signer: Signer, name: str, version: str) -> tuple[Path, Path, str]:
    b = signed_bundle(tmp, signer, name, version)
    bundle, sig = tmp / f"{name}-{version}.tar.zst", tmp / f"{name}-{version}.sig"
    bundle.write_bytes(b.data)
    sig.write_text(b.signature)
    return bundle, sig, b.content_hash


async def _trusted_signer(extctl: Extctl, tmp: Path, *extra: str) -> Signer:
    signer = Signer("acme")
    pub = tmp / "signing.pub"
    pub.write_text(signer.pem)
    (tmp / "signing.key").write_bytes(private_key_to_pem(signer.private))
    out = await extctl("trust", "add", str(pub), "--publisher", "acme", *extra)
    assert signer.key_id in out.stdout
    return signer


@pytest.mark.usefixtures("worker")
async def test_publish_install_status_ls(extctl: Extctl, tmp_path: Path, tenant: str) -> None:
    signer = await _trusted_signer(extctl, tmp_path)
    name = unique_name()
    bundle, sig, digest = _write_bundle(tmp_path, signer, name, "1.0.0")

    out = await extctl("publish", str(bundle), "--signature", str(sig))
    for expected in (name, "1.0.0", digest, "publish/" + digest.removeprefix("sha256:")):
        assert expected in out.stdout

    out = await extctl(
        "install", f"{name}@1.0.0", "--tenant", tenant, "--config", "n=3", "--secret", "k=hush-hush"
    )
    assert f"{tenant}: {name} 1.0.0 active" in out.stdout and "hush-hush" not in out.stdout

    status = (await extctl("--json", "status", name, "--tenant", tenant)).json()
    assert (status["version"], status["status"], status["config"]) == ("1.0.0", "active", {"n": 3})

    listed = (await extctl("--json", "ls")).json()
    assert [e["name"] for e in listed["extensions"]] == [name]
    assert [(i["tenant_id"], i["extension"]) for i in listed["installs"]] == [(tenant, name)]
    human = await extctl("ls", "--tenant", tenant)
    assert f"{tenant}  {name}  1.0.0  active" in human.stdout


async def _published_via_api(
    api_url: str, tmp: Path, name: str, versions: list[str], *, install_in: str | None = None
) -> Signer:
    """Set-up through the HTTP API directly (cheaper than one extctl process per step): trust a key,
    publish `versions` of `name`, and install the first one in `install_in`."""
    signer = Signer("acme")
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_TOKEN), timeout=60) as api:
        await trust_via_api(api, signer)
        for version in versions:
            b = signed_bundle(tmp, signer, name, version)
            resp = await api.post("/v1/bundles", content=b.data, headers=b.headers())
            assert resp.status_code == 200, resp.text
        if install_in is not None:
            body = {"extension": name, "version": versions[0]}
            resp = await api.post(f"/v1/tenants/{install_in}/installs", json=body)
            assert resp.status_code == 200, resp.text
    return signer


@pytest.mark.usefixtures("worker")
async def test_version_commands(extctl: Extctl, api_url: str, tmp_path: Path, tenant: str) -> None:
    name = unique_name()
    await _published_via_api(api_url, tmp_path, name, ["1.0.0", "1.1.0"], install_in=tenant)

    up = (await extctl("--json", "upgrade", f"{name}@1.1.0", "--tenant", tenant)).json()
    assert (up["previous_version"], up["version"]) == ("1.0.0", "1.1.0")
    back = (await extctl("--json", "rollback", name, "--tenant", tenant)).json()
    assert back["version"] == "1.0.0"
    to = (await extctl("--json", "rollback", name, "--tenant", tenant, "--to", "1.1.0")).json()
    assert to["version"] == "1.1.0"
    assert (await extctl("--json", "disable", name, "--tenant", tenant)).json()["status"] == "disabled"
    assert (await extctl("--json", "enable", name, "--tenant", tenant)).json()["status"] == "active"
    assert (await extctl("--json", "uninstall", name, "--tenant", tenant)).json()["status"] == "uninstalled"


@pytest.mark.usefixtures("worker")
async def test_config_secrets_limits_debug_audit(
    extctl: Extctl, api_url: str, tmp_path: Path, tenant: str
) -> None:
    name = unique_name()
    await _published_via_api(api_url, tmp_path, name, ["1.0.0"], install_in=tenant)
    cfg = (await extctl("--json", "config", "set", name, "--tenant", tenant, "a=1", "b=x")).json()
    assert cfg["config_version"] == 1
    sec = await extctl("secrets", "set", name, "--tenant", tenant, "token=very-secret-value")
    assert "very-secret-value" not in sec.stdout and "token" in sec.stdout
    await extctl("limits", "set", name, "--tenant", tenant, "--rps", "7", "--burst", "9")
    status = (await extctl("--json", "status", name, "--tenant", tenant)).json()
    assert (status["config"], status["rate_limit_rps"], status["rate_limit_burst"]) == (
        {"a": 1, "b": "x"},
        7.0,
        9,
    )
    assert status["debug_enabled"] is False

    on = await extctl("debug", "enable", name, "--tenant", tenant)
    assert f"{tenant}: {name} 1.0.0 active" in on.stdout and "debug flag on" in on.stdout
    assert "(no change)" not in on.stdout
    human = await extctl("status", name, "--tenant", tenant)
    assert "debug flag       on" in human.stdout and "set_debug" in human.stdout
    off = (await extctl("--json", "debug", "disable", name, "--tenant", tenant)).json()
    assert (off["operation"], off["changed"], off["extension"]) == ("set_debug", True, name)
    again = await extctl("debug", "disable", name, "--tenant", tenant)
    assert "(no change)" in again.stdout and "debug flag off" in again.stdout
    assert (await extctl("--json", "status", name, "--tenant", tenant)).json()["debug_enabled"] is False
    res = await extctl("debug", "enable", unique_name(), "--tenant", tenant, ok=False)
    assert res.code != 0 and res.stderr.startswith("error: not_found: "), res.stderr

    audit = (await extctl("--json", "audit", "--tenant", tenant, "--extension", name)).json()
    assert audit and all(e["ui_url"] and e["workflow_id"] for e in audit)
    human = await extctl("audit", "--tenant", tenant)
    assert "bootstrap" in human.stdout and "install/" in human.stdout
    recent = (
        await extctl("--json", "audit", "--tenant", tenant, "--since", "1h", "--action", "set_*")
    ).json()
    assert {e["action"] for e in recent} == {
        "set_config",
        "set_secrets",
        "set_limits",
        "set_debug",
        "set_debug_noop",
    }
    assert (
        await extctl("--json", "audit", "--tenant", tenant, "--since", "2999-01-01T00:00:00Z")
    ).json() == []
    bad = await extctl("audit", "--tenant", tenant, "--since", "2026-01-01", ok=False)
    assert bad.code != 0 and bad.stderr.startswith("error: invalid_request: ") and "since" in bad.stderr


@pytest.mark.usefixtures("worker")
async def test_failures_are_one_line_and_non_zero(extctl: Extctl, tenant: str) -> None:
    res = await extctl("install", f"{unique_name()}@1.0.0", "--tenant", tenant, ok=False)
    assert res.code != 0
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: not_found: "), res.stderr
    res = await extctl("--json", "status", "com.none.here", "--tenant", tenant, ok=False)
    assert res.code != 0 and res.json()["error"] == "not_found"
    res = await extctl("install", "no-version", "--tenant", tenant, ok=False)
    assert res.code != 0 and res.stderr.startswith("error: invalid_request: ")
    bad_token = Extctl(env={**extctl.env, "EXT_ADMIN_TOKEN": "wrong-token"}, cwd=extctl.cwd)
    res = await bad_token("ls", ok=False)
    assert res.code != 0 and res.stderr.startswith("error: unauthenticated: ")


@pytest.mark.usefixtures("worker")
async def test_tokens_and_trust_revoke(extctl: Extctl, tmp_path: Path, tenant: str) -> None:
    token = (
        await extctl("tokens", "create", "--tenant", tenant, "--scope", "ext:read", "--scope", "ext:write")
    ).stdout.strip()
    assert token.startswith("ext_")
    as_tenant = Extctl(env={**extctl.env, "EXT_ADMIN_TOKEN": token}, cwd=extctl.cwd)
    assert (await as_tenant("--json", "ls", "--tenant", tenant)).json() == {"installs": []}
    res = await as_tenant("ls", "--tenant", "someone-else", ok=False)
    assert res.stderr.startswith("error: tenant_mismatch: ")
    glob = (await extctl("--json", "tokens", "create", "--scope", "admin", "--name", "ops")).json()
    assert glob["tenant_id"] is None and glob["name"] == "ops"

    signer = await _trusted_signer(extctl, tmp_path, "--expires", "2099-01-02T03:04:05")
    revoked = (await extctl("--json", "trust", "revoke", signer.key_id, "--reason", "leaked")).json()
    assert revoked["key_id"] == signer.key_id and revoked["already_revoked"] is False
    listed = (await extctl("--json", "trust", "ls")).json()
    (key,) = [k for k in listed if k["key_id"] == signer.key_id]
    assert key["revoked_at"] is not None and key["revoked_reason"] == "leaked"
    assert key["expires_at"].startswith("2099-01-02T03:04:05")


async def test_env_file_is_read_when_env_is_unset(api_url: str, tmp_path: Path) -> None:
    cwd = tmp_path / "proj"
    (cwd / ".extplane").mkdir(parents=True)
    (cwd / ".extplane" / "dev.env").write_text(f"EXT_API_URL={api_url}\nEXT_ADMIN_TOKEN='{ADMIN_TOKEN}'\n")
    res = await Extctl(env=_env(), cwd=cwd)("--json", "ls")
    assert res.json() == {"extensions": [], "installs": []}
    res = await Extctl(env=_env(), cwd=tmp_path)("ls", ok=False)
    assert res.code != 0 and "EXT_API_URL" in res.stderr


async def test_executions_lists_a_tenants_calls(extctl: Extctl, db_pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:10]}"
    ids = []
    for n, (ext, fuel, principal, operator) in enumerate(
        [
            ("com.acme.x", 111, "token:aaaa", False),
            ("com.acme.y", None, "admin", True),
            ("com.acme.x", 333, "token:aaaa", False),
        ]
    ):
        ids.append(
            await db_pool.fetchval(
                """INSERT INTO execution_log (request_id, tenant_id, extension_name, version, method,
                                              endpoint, status, outcome, duration_ms, principal, operator,
                                              fuel_consumed, at)
                   VALUES ($1, $2, $3, '1.0.0', 'GET', '/items/:id', 200, 'ok', 2.5, $4, $5, $6,
                           now() - make_interval(secs => $7))
                   RETURNING id""",
                uuid.uuid4().hex,
                t,
                ext,
                principal,
                operator,
                fuel,
                10 - n,
            )
        )
    await db_pool.execute(
        """INSERT INTO execution_log (request_id, tenant_id, extension_name, method, status, outcome,
                                      duration_ms)
           VALUES ('other', 'someone-else', 'com.acme.x', 'GET', 404, 'policy_denied', 1)"""
    )

    async def run(*args: str) -> Result:
        return await extctl(*args, ok=False)

    listed = await run("--json", "executions", "--tenant", t)
    assert listed.code == 0, listed.stderr
    assert [r["id"] for r in listed.json()] == ids[::-1]
    assert [r["fuel_consumed"] for r in listed.json()] == [333, None, 111]

    page = await run(
        "--json", "executions", "--tenant", t, "--extension", "com.acme.x", "--before", str(ids[2])
    )
    assert page.code == 0, page.stderr
    assert [r["id"] for r in page.json()] == [ids[0]]

    human = await run("executions", "--tenant", t, "--limit", "2")
    assert human.code == 0, human.stderr
    header, first, second = human.stdout.splitlines()
    assert header.split() == ["ID", "AT", "PRINCIPAL", "CALL", "STATUS", "OUTCOME", "MS", "FUEL", "VERSION"]
    assert first.startswith(str(ids[2])) and "GET com.acme.x/items/:id" in first and " 333 " in first
    assert second.startswith(str(ids[1])) and "admin (operator)" in second and "someone" not in human.stdout

    bad = await run("executions", "--tenant", t, "--limit", "0")
    assert bad.code != 0
    empty = await run("executions", "--tenant", "t-nobody")
    assert (empty.code, empty.stdout.strip()) == (0, "no executions")


async def test_master_key_rotate(
    extctl: Extctl,
    api_url: str,
    tmp_path: Path,
    tenant: str,
    settings: OperatorSettings,  # noqa: F811
    temporal_client: Client,  # noqa: F811
    db_pool: asyncpg.Pool,
    data_dir: Path,  # noqa: F811
    redis_url: str,
) -> None:
    common: dict[str, Any] = {"pool": db_pool, "data_dir": data_dir, "redis_url": redis_url}
    queue = settings.control_task_queue
    wf_id = manual_rotation_workflow_id(queue)
    async with (
        control_workers(temporal_client, queue, keyring=fixed_keyring(1), **common),
        httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_TOKEN), timeout=60) as api,
    ):
        await install_with_secrets(api, tmp_path, [tenant])
        token = (await api.post("/v1/tokens", json={"tenant_id": tenant, "scopes": ["admin"]})).json()
    assert await data_key_versions(db_pool) == {1}

    as_tenant = Extctl(env={**extctl.env, "EXT_ADMIN_TOKEN": token["token"]}, cwd=extctl.cwd)
    res = await as_tenant("master-key", "rotate", ok=False)
    assert res.code != 0 and res.stderr.startswith("error: forbidden: "), res.stderr

    try:
        async with control_workers(temporal_client, queue, keyring=ROTATED, **common):
            human = (await extctl("master-key", "rotate")).stdout
            assert "data keys under master key version 2" in human, human
            assert "re-wrapped      1" in human and f"workflow id     {wf_id}" in human
            again = (await extctl("--json", "master-key", "rotate")).json()
            assert {k: again[k] for k in ("target_version", "rewrapped", "workflow_id")} == {
                "target_version": 2,
                "rewrapped": 0,
                "workflow_id": wf_id,
            }
        assert await data_key_versions(db_pool) == {2}

        # No worker polls now: the rotation is left running, and both forms say where to follow it.
        queued = (await extctl("--json", "master-key", "rotate", "--no-wait")).json()
        assert (queued["operation_id"], queued["status"]) == (wf_id, "running")
        human = (await extctl("master-key", "rotate", "--no-wait")).stdout
        assert f"rotation continues in workflow {wf_id}" in human and f"/v1/operations/{wf_id}" in human
    finally:
        await end_workflows(temporal_client, wf_id)
