"""`extctl schedules ls|run|pause|resume` and `upgrade --drop-schedule`: the NAME form, the table, and
the commands against the real operator API and worker (subprocesses, as a user runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from temporalio.client import Client
from temporalio.service import RPCError

from cli.commands.schedules import split_schedule, table
from schema.temporal import install_schedule_id

# The operator-API and extctl fixtures shared with the other CLI tests.
from tests.api.conftest import (  # noqa: F401
    ADMIN_TOKEN,
    bearer,
    data_dir,
    keyring,
    settings,
    temporal_client,
    worker,
)
from tests.api.test_schedules import _publish_scheduled
from tests.cli.test_operator_cli import Extctl, api_url, extctl, tenant  # noqa: F401


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("com.acme.reports/nightly", ("com.acme.reports", "nightly")),
        ("com.acme.x/a-1", ("com.acme.x", "a-1")),
    ],
)
def test_a_schedule_is_named_extension_slash_schedule(ref: str, want: tuple[str, str]) -> None:
    assert split_schedule(ref) == want


@pytest.mark.parametrize("ref", ["com.acme.reports", "com.acme.reports/", "/nightly", "a.b/c/d"])
def test_another_name_is_a_usage_error_naming_the_form(ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exc:
        split_schedule(ref)
    assert exc.value.exit_code == 1
    assert "expected EXTENSION/SCHEDULE" in capsys.readouterr().err


def test_the_table_shows_state_next_and_last_run() -> None:
    rows: list[dict[str, Any]] = [
        {
            "extension": "com.acme.x",
            "name": "nightly",
            "cron": "0 3 * * *",
            "endpoint": "GET /status",
            "state": "paused",
            "note": "maintenance",
            "next_run_at": None,
            "last_run": {"at": "2026-12-03T03:00:01.5Z", "status": 200, "outcome": "ok", "request_id": "r"},
        },
        {
            "extension": "com.acme.x",
            "name": "report",
            "cron": "30 4 * * 1",
            "endpoint": "POST /report",
            "state": "active",
            "note": "",
            "next_run_at": "2026-12-07T04:30:00Z",
            "last_run": None,
        },
    ]
    lines = table(rows).splitlines()
    assert lines[0].split() == [
        "EXTENSION",
        "SCHEDULE",
        "CRON",
        "ENDPOINT",
        "STATE",
        "NEXT",
        "RUN",
        "LAST",
        "RUN",
    ]
    assert "paused (maintenance)" in lines[1] and "2026-12-03 03:00Z ok (200)" in lines[1]
    assert lines[2].rstrip().endswith("2026-12-07 04:30Z  -")


@pytest.mark.integration
@pytest.mark.temporal
@pytest.mark.timeout(180)
@pytest.mark.usefixtures("worker")
async def test_schedule_commands(
    extctl: Extctl,  # noqa: F811
    api_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
    temporal_client: Client,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_TOKEN), timeout=60) as api:
        name = await _publish_scheduled(api, tmp_path)
        resp = await api.post(f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": "1.0.0"})
        assert resp.status_code == 200, resp.text
    try:
        listed = await extctl("schedules", "ls", "--tenant", tenant)
        header, *rows = listed.stdout.splitlines()
        assert header.startswith("EXTENSION") and "NEXT RUN" in header and "LAST RUN" in header
        assert len(rows) == 2 and rows[0].startswith(name) and "nightly" in rows[0] and "active" in rows[0]
        assert "POST /report" in rows[1]
        as_json = (await extctl("schedules", "ls", name, "--tenant", tenant, "--json")).json()
        assert [r["name"] for r in as_json] == ["nightly", "report"]
        assert (await extctl("schedules", "ls", "com.acme.none", "--tenant", tenant)).stdout.strip() == (
            "no schedules"
        )

        paused = await extctl("schedules", "pause", f"{name}/nightly", "--tenant", tenant, "--note", "quiet")
        assert f"{name}/nightly: paused: quiet" in paused.stdout
        rows = (await extctl("schedules", "ls", "--tenant", tenant)).stdout.splitlines()[1:]
        assert "paused (quiet)" in rows[0]
        resumed = await extctl("schedules", "resume", f"{name}/nightly", "--tenant", tenant, "--json")
        assert resumed.json()["paused"] is False and resumed.json()["changed"] is True

        bad = await extctl("schedules", "pause", name, "--tenant", tenant, ok=False)
        assert bad.code == 1 and "expected EXTENSION/SCHEDULE" in bad.stderr
        missing = await extctl("schedules", "run", f"{name}/nosuch", "--tenant", tenant, ok=False)
        assert missing.code == 1 and "error: not_found:" in missing.stderr and "nosuch" in missing.stderr

        await extctl("disable", name, "--tenant", tenant)
        refused = await extctl("schedules", "resume", f"{name}/report", "--tenant", tenant, ok=False)
        assert refused.code == 1 and "error: install_not_active:" in refused.stderr
        refused = await extctl(
            "schedules", "run", f"{name}/report", "--tenant", tenant, "--no-wait", ok=False
        )
        assert "error: install_not_active:" in refused.stderr
        await extctl("enable", name, "--tenant", tenant)

        dropped = await extctl("upgrade", f"{name}@2.0.0", "--tenant", tenant, ok=False)
        assert dropped.code == 1 and "error: schedule_endpoint_dropped:" in dropped.stderr
        assert "report" in dropped.stderr
        up = await extctl("upgrade", f"{name}@2.0.0", "--tenant", tenant, "--drop-schedule", "report")
        assert "1.0.0 -> 2.0.0" in up.stdout
        assert [
            r["name"] for r in (await extctl("schedules", "ls", "--tenant", tenant, "--json")).json()
        ] == ["nightly"]
        # Rollback takes it too (here needlessly: 1.0.0 keeps the endpoint of 2.0.0's schedule).
        back = await extctl("rollback", name, "--tenant", tenant, "--drop-schedule", "nightly")
        assert "2.0.0 -> 1.0.0" in back.stdout
    finally:
        for sched in ("nightly", "report"):
            try:
                await temporal_client.get_schedule_handle(install_schedule_id(tenant, name, sched)).delete()
            except RPCError:
                pass
