"""`extctl rollout start|status|pause|resume|abort` against the real operator API and worker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

# The operator-API fixtures shared with tests/api and the extctl runner of test_operator_cli.
from tests.api.conftest import (  # noqa: F401
    control_workers,
    data_dir,
    keyring,
    settings,
    temporal_client,
    worker,
)
from tests.cli.test_operator_cli import Extctl, _published_via_api, api_url, extctl, tenant  # noqa: F401
from tests.workflows.helpers import unique_name

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(150)]


async def _until(run: Extctl, rollout_id: str, state: str) -> dict[str, object]:
    for _ in range(120):
        out = (await run("--json", "rollout", "status", rollout_id)).json()
        if out["state"] == state:
            assert isinstance(out, dict)
            return out
        await asyncio.sleep(0.25)
    raise AssertionError(f"rollout {rollout_id} never reached {state}")


@pytest.mark.usefixtures("worker")
async def test_rollout_commands(
    extctl: Extctl,  # noqa: F811
    api_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
    temporal_client: Client,  # noqa: F811
) -> None:
    name = unique_name()
    await _published_via_api(api_url, tmp_path, name, ["1.0.0", "1.1.0"], install_in=tenant)
    rid = f"cli-{uuid.uuid4().hex[:8]}"
    out = await extctl(
        "rollout", "start", f"{name}@1.1.0", "--tenants", tenant, "--waves", "1", "--soak", "60s", "--id", rid
    )
    assert f"rollout {rid} started" in out.stdout
    await _until(extctl, rid, "soaking")
    paused = await extctl("rollout", "pause", rid, "--reason", "look")
    assert "soaking (paused)" in paused.stdout
    await extctl("rollout", "resume", rid)
    await extctl("rollout", "abort", rid, "--reason", "enough")
    done = await _until(extctl, rid, "aborted")
    assert done["rolled_back"] == 1
    human = await extctl("rollout", "status", rid, "--outcomes")
    assert "reason: aborted by" in human.stdout and f"{tenant}: wave 1 rolled_back" in human.stdout
    # Bad input: one line, non-zero exit, a stable code.
    bad = await extctl("rollout", "start", f"{name}@1.1.0", "--all", "--waves", "5,1", ok=False)
    assert bad.code != 0 and "invalid_request" in bad.stderr
    both = await extctl("rollout", "start", f"{name}@1.1.0", ok=False)
    assert both.code != 0 and "--tenants" in both.stderr
    gone = await extctl("rollout", "pause", rid, ok=False)
    assert gone.code != 0 and "conflict" in gone.stderr
