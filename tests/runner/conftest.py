"""Fixtures of the runner tests: a migrated database per worker and a real runner process on it.

The database comes from the suite's Postgres (tests/conftest.py `database_server_url`); it is kept for
the worker's session because the runner process is, and dropped at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.runner.runner_helpers import EGRESS_SETTINGS, RunnerProcess, start_runner
from tests.support.databases import scratch_database


@pytest.fixture(scope="session")
async def runner_db_url(database_server_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_server_url, "extplane_runner") as url:
        yield url


@pytest.fixture(scope="session")
def runner_proc(runner_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    proc = start_runner(tmp_path_factory.mktemp("runner"), runner_db_url, threads=2, **EGRESS_SETTINGS)
    yield proc
    proc.stop()


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path
