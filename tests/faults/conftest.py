"""Each fault test runs its own full stack (tests/faults/harness.py) and stops it afterwards.

`fault_stack`: Redis, Temporal and every app of its own (embedded, started for the test), and a fresh
database of its own on the suite's Postgres server (dropped afterwards). The Postgres fault starts an
embedded cluster instead (tests/faults/test_postgres_restart.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.faults.harness import FaultStack, clean_environ


async def _drop_database(url: str) -> None:
    parts = urlsplit(url)
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')
    finally:
        await admin.close()


def run_stack(root: Path, environ: dict[str, str]) -> Iterator[FaultStack]:
    fs = FaultStack(root, environ)
    try:
        fs.up()
        yield fs
    finally:
        fs.down()
        if "EXT_DATABASE_URL" in environ:
            asyncio.run(_drop_database(environ["EXT_DATABASE_URL"]))


@pytest.fixture
def fault_stack(tmp_path: Path, database_server_url: str) -> Iterator[FaultStack]:
    yield from run_stack(tmp_path / "stack", clean_environ(database_server=database_server_url))
