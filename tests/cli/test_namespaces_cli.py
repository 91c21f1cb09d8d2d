"""`extctl namespaces add|ls|rm` against the real operator API, worker, Postgres and Temporal."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

# The operator-API and extctl fixtures shared with tests/api and tests/cli/test_operator_cli.py.
from tests.api.conftest import data_dir, keyring, settings, temporal_client, worker  # noqa: F401
from tests.cli.test_operator_cli import Extctl, api_url, extctl  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.timeout(150)]


@pytest.mark.usefixtures("worker")
async def test_namespaces_add_ls_rm(extctl: Extctl, db_pool: asyncpg.Pool) -> None:  # noqa: F811
    prefix = f"com.cpother{uuid.uuid4().hex[:8]}"

    out = await extctl("namespaces", "add", prefix, "--publisher", "cpother")
    assert f"{prefix} (registered for publisher cpother; workflow namespace-add/{prefix})" in out.stdout
    listed = (await extctl("--json", "namespaces", "ls")).json()
    assert [(n["prefix"], n["publisher"], n["source"]) for n in listed] == [(prefix, "cpother", "registered")]

    taken = await extctl("namespaces", "add", prefix, "--publisher", "cptest", ok=False)
    assert taken.code != 0 and "conflict" in taken.stderr and len(taken.stderr.strip().splitlines()) == 1

    out = await extctl("namespaces", "rm", prefix)
    assert f"removed {prefix} (was publisher cpother's" in out.stdout
    assert "no namespaces" in (await extctl("namespaces", "ls")).stdout
    actions = await db_pool.fetch(
        "SELECT action FROM audit_events WHERE action LIKE 'namespace_%' ORDER BY id"
    )
    assert [a["action"] for a in actions] == ["namespace_registered", "namespace_removed"]
