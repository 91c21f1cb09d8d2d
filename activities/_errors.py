"""The activity boundary of errors (STYLE.md 4): domain errors become Temporal failures.

    ExtplaneError, retryable=False  ->  ApplicationError(message, type=<code>, non_retryable=True)
    ExtplaneError, retryable=True   ->  raised as is: the retry policy works (Unavailable: Postgres down)
    anything else                   ->  raised as is: retried, then surfaced as a bug

Workflows key their compensation on `ApplicationError.type`, which is always a schema.errors.ErrorCode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from temporalio.exceptions import ApplicationError

from core.errors import ExtplaneError

log = structlog.get_logger(__name__)


@contextmanager
def activity_errors() -> Iterator[None]:
    try:
        yield
    except ExtplaneError as exc:
        if exc.retryable:
            log.warning("activity_dependency_unavailable", error=exc.code.value, reason=exc.message)
            raise
        log.info("activity_refused", error=exc.code.value, reason=exc.message)
        details = [exc.details] if exc.details else []
        raise ApplicationError(exc.message, *details, type=exc.code.value, non_retryable=True) from exc
