"""Fixtures of the runner tests: a migrated database per worker and a real runner process on it.

The database comes from the suite's Postgres (tests/conftest.py `database_server_url`); it is kept for
the worker's session because the runner process is, and dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from core.migrations import ensure_database, migrate
from tests.runner.runner_helpers import EGRESS_SETTINGS, RunnerProcess, start_runner


@pytest.fixture(scope="session")
async def runner_db_url(database_server_url: str) -> AsyncIterator[str]:
    parts = urlsplit(database_server_url)
    name = f"extplane_runner_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = urlunsplit(parts._replace(path=f"/{name}"))
    await ensure_database(url)
    await migrate(url)
    yield url
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def runner_proc(runner_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    proc = start_runner(tmp_path_factory.mktemp("runner"), runner_db_url, threads=2, **EGRESS_SETTINGS)
    yield proc
    proc.stop()


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path
