"""How a scheduled run classifies the runner's answer (activities.schedules._outcome): the
execution_log outcome, and whether the run's workflow fails."""

from __future__ import annotations

import pytest

from activities.schedules import _header_lines, _outcome, _skip_reason
from schema.envelope import ExecError, ExecuteResponse
from schema.payloads.schedules import RunOutcome


@pytest.mark.parametrize(
    ("http", "answer", "expected"),
    [
        (200, ExecuteResponse(status=200), (200, "ok", RunOutcome.OK, "")),
        (200, ExecuteResponse(status=404), (404, "handler_error", RunOutcome.OK, "")),
        (
            200,
            ExecuteResponse(status=503),
            (503, "handler_error", RunOutcome.ERROR, "the handler answered 503"),
        ),
        (
            500,
            ExecuteResponse(error=ExecError(code="guest_trap", message="unreachable")),
            (500, "upstream_error", RunOutcome.ERROR, "guest_trap"),
        ),
        (
            504,
            ExecuteResponse(error=ExecError(code="deadline_exceeded", message="5000 ms")),
            (504, "timeout", RunOutcome.ERROR, "deadline_exceeded"),
        ),
        (401, ExecuteResponse(), (401, "upstream_error", RunOutcome.ERROR, "http_401")),
    ],
)
def test_outcome(http: int, answer: ExecuteResponse, expected: tuple[int, str, RunOutcome, str]) -> None:
    assert _outcome(http, answer) == expected


def test_runner_header_lines_become_a_mapping() -> None:
    assert _header_lines(b"x-ext-install-id: abc\r\nx-ext-revision: 3\r\n") == {
        "x-ext-install-id": "abc",
        "x-ext-revision": "3",
    }


def test_nothing_installed_is_a_skip_with_a_reason() -> None:
    assert _skip_reason(None, "nightly") == "not installed"
