"""A migrated database of its own for a group of tests, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from core.migrations import ensure_database, migrate


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """Create `{prefix}_{pid}_{random}` on the server of `server_url`, migrate it, yield its URL, drop it
    (WITH FORCE: processes a test started may still hold connections)."""
    parts = urlsplit(server_url)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = urlunsplit(parts._replace(path=f"/{name}"))
    await ensure_database(url)
    await migrate(url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
