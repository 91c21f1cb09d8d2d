"""`extctl audit --since`: a duration back from now becomes the timestamp the API takes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer

from cli.commands.audit import since_param

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", "2026-03-01T11:58:30+00:00"),
        ("30m", "2026-03-01T11:30:00+00:00"),
        ("1h", "2026-03-01T11:00:00+00:00"),
        ("2d", "2026-02-27T12:00:00+00:00"),
        ("1w", "2026-02-22T12:00:00+00:00"),
        # Anything else goes to the API unchanged, which checks it (400 naming `since`).
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("yesterday", "yesterday"),
    ],
)
def test_relative_durations_become_timestamps(value: str, expected: str) -> None:
    assert since_param(value, now=NOW) == expected
    assert since_param(None) is None


def test_a_bare_number_needs_a_unit() -> None:
    with pytest.raises(typer.Exit):
        since_param("15", now=NOW)
