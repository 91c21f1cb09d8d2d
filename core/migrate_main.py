"""`python -m core.migrate_main`: create the registry database if needed and apply the SQL migrations.

The one-shot `migrate` service of docker/compose.yaml runs this before any other extplane process
starts; `extctl dev up` does the same through `core.migrations` directly. Safe to run concurrently and
repeatedly: migrations are applied under an advisory lock, forward-only and checksummed. Exits
non-zero (with one line on stderr) when the database stays unreachable or a recorded migration
changed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

import structlog

from core.errors import Unavailable
from core.logging import configure_logging
from core.migrations import ensure_database, migrate
from core.settings import CommonSettings

log = structlog.get_logger(__name__)


async def run(dsn: str, *, wait_seconds: float) -> list[int]:
    """Wait up to `wait_seconds` for Postgres to accept connections, then migrate."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            await ensure_database(dsn)
            break
        except (OSError, Unavailable) as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("migrate_waiting_for_postgres", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    return await migrate(dsn)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.migrate_main", description=__doc__)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for Postgres")
    args = parser.parse_args(argv)
    settings = CommonSettings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        applied = asyncio.run(run(settings.database_url, wait_seconds=args.wait))
    except Exception as exc:  # one line for the operator, not a traceback
        print(f"error: migrate: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from exc
    log.info("migrations_applied", applied=applied)


if __name__ == "__main__":
    main()
