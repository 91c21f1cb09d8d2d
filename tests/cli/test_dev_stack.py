"""`extctl dev up | status | down` against real processes: embedded services, idempotence, external
services left alone, and the dev.env contract."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from cli.devstack import apps as app_specs
from cli.devstack.procs import pid_alive, port_open
from cli.devstack.stack import Stack, read_env_file
from core.migrations import load_migrations

pytestmark = pytest.mark.integration

CONTRACT_KEYS = {
    "EXT_API_URL",
    "EXT_GATEWAY_URL",
    "EXT_RUNNER_URL",
    "EXT_TEMPORAL_ADDRESS",
    "EXT_TEMPORAL_UI_URL",
    "EXT_DATABASE_URL",
    "EXT_REDIS_URL",
    "EXT_ADMIN_TOKEN",
}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def _migrated_versions(url: str) -> tuple[list[int], int]:
    conn = await asyncpg.connect(url)
    try:
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ]
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'installs'"
        )
        return versions, int(tables)
    finally:
        await conn.close()


def test_embedded_stack_up_is_idempotent_and_down_stops_everything(tmp_stack_root: Path) -> None:
    stack = Stack(tmp_stack_root, environ=_clean_env(), with_apps=False, auto_ports=True)
    first = stack.up()
    assert set(first.started_now) == {"postgres", "redis", "temporal"}
    assert all(s.managed for s in first.services.values())

    env = read_env_file(tmp_stack_root / "dev.env")
    assert CONTRACT_KEYS <= set(env)
    assert (tmp_stack_root / "dev.env").stat().st_mode & 0o077 == 0, "dev.env holds the admin token"

    expected = [m.version for m in load_migrations()]
    assert asyncio.run(_migrated_versions(env["EXT_DATABASE_URL"])) == (expected, 1)

    second = stack.up()
    assert second.started_now == []
    assert read_env_file(tmp_stack_root / "dev.env") == env, "a second up must not change the env file"
    assert all(st["healthy"] for st in stack.status().values())

    ports = [first.services[n].port for n in ("postgres", "redis", "temporal")]
    stopped = stack.down()
    assert set(stopped) == {"postgres", "redis", "temporal"}
    assert not any(port_open("127.0.0.1", p) for p in ports if p)
    assert stack.status() == {}


def test_external_services_are_used_and_never_stopped(tmp_stack_root: Path) -> None:
    environ = _clean_env()
    environ["EXT_DATABASE_URL"] = (
        os.environ["EXT_TEST_DATABASE_URL"].rsplit("/", 1)[0] + f"/extplane_devtest_{os.getpid()}"
    )
    environ["EXT_TEMPORAL_ADDRESS"] = os.environ["EXT_TEST_TEMPORAL_ADDRESS"]
    environ["EXT_TEMPORAL_UI_URL"] = os.environ["EXT_TEST_TEMPORAL_UI_URL"]
    stack = Stack(tmp_stack_root, environ=environ, with_apps=False, auto_ports=True)
    info = stack.up()
    assert info.started_now == ["redis"]
    assert not info.services["postgres"].managed and not info.services["temporal"].managed
    assert info.env["EXT_DATABASE_URL"] == environ["EXT_DATABASE_URL"]

    assert stack.down() == ["redis"]
    assert port_open("127.0.0.1", _port_of(environ["EXT_DATABASE_URL"]))
    assert port_open("127.0.0.1", _port_of("x:" + environ["EXT_TEMPORAL_ADDRESS"]))


def test_cli_dev_commands(tmp_stack_root: Path) -> None:
    environ = _clean_env()
    environ["EXT_DATABASE_URL"] = (
        os.environ["EXT_TEST_DATABASE_URL"].rsplit("/", 1)[0] + f"/extplane_devcli_{os.getpid()}"
    )
    environ["EXT_REDIS_URL"] = os.environ["EXT_TEST_REDIS_URL"]
    environ["EXT_TEMPORAL_ADDRESS"] = os.environ["EXT_TEST_TEMPORAL_ADDRESS"]
    extctl = [sys.executable, "-m", "cli", "--json"]
    root = ["--root", str(tmp_stack_root)]

    up = subprocess.run(
        [*extctl, "dev", "up", "--no-apps", *root], env=environ, capture_output=True, text=True, check=False
    )
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    assert data["started"] == [] and data["env_file"].endswith("dev.env")

    status = subprocess.run(
        [*extctl, "dev", "status", *root], env=environ, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, status.stderr
    assert {"postgres", "redis", "temporal"} <= set(json.loads(status.stdout))

    down = subprocess.run(
        [*extctl, "dev", "down", *root], env=environ, capture_output=True, text=True, check=False
    )
    assert down.returncode == 0 and json.loads(down.stdout) == {"stopped": []}


def test_up_reports_a_broken_service_in_one_line(tmp_stack_root: Path) -> None:
    environ = _clean_env()
    environ["EXT_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/nope"  # nothing listens on port 1
    environ["EXT_REDIS_URL"] = os.environ["EXT_TEST_REDIS_URL"]
    environ["EXT_TEMPORAL_ADDRESS"] = os.environ["EXT_TEST_TEMPORAL_ADDRESS"]
    res = subprocess.run(
        [sys.executable, "-m", "cli", "dev", "up", "--no-apps", "--root", str(tmp_stack_root)],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dev_stack_failed:") and "database" in lines[0]


def test_dev_up_starts_extplane_services_healthy(
    tmp_stack_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker, runner, operator API and gateway come up with the stack and go down with it."""
    environ = _clean_env()
    environ["EXT_DATABASE_URL"] = (
        os.environ["EXT_TEST_DATABASE_URL"].rsplit("/", 1)[0] + f"/extplane_devapps_{os.getpid()}"
    )
    environ["EXT_REDIS_URL"] = os.environ["EXT_TEST_REDIS_URL"]
    environ["EXT_TEMPORAL_ADDRESS"] = os.environ["EXT_TEST_TEMPORAL_ADDRESS"]
    stack = Stack(tmp_stack_root, environ=environ, with_apps=True, auto_ports=True)
    info = stack.up()
    expected = {spec.name for spec in app_specs.APPS if app_specs.available(spec)}
    assert expected == {"worker", "runner", "api", "gateway"}
    assert expected <= set(info.started_now)
    status = stack.status()
    assert all(status[name]["healthy"] for name in expected), status
    for key in ("EXT_RUNNER_URL", "EXT_API_URL", "EXT_GATEWAY_URL"):
        assert app_specs.healthy(info.env[key], "/healthz"), key
    assert stack.up().started_now == [], "a second up reuses the running services"
    pids = {name: stack.status()[name]["pid"] for name in expected}
    # Sources changed since the apps started: the next up replaces them instead of reusing them.
    monkeypatch.setattr(app_specs, "code_fingerprint", lambda: "changed-sources")
    assert set(stack.up().started_now) == expected
    status = stack.status()
    assert all(status[name]["healthy"] and status[name]["pid"] != pids[name] for name in expected), status
    assert not any(pid_alive(pid) for pid in pids.values())
    stopped = stack.down()
    assert expected <= set(stopped)
    assert not any(app_specs.healthy(info.env[k], "/healthz") for k in ("EXT_RUNNER_URL", "EXT_API_URL"))
