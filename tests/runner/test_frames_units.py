"""runner._frames.FrameServer alone (no runner process): a call that raises inside the runner closes
its connection without an answer and is logged, and the server goes on serving other connections;
closing the server ends its connections."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.logging import configure_logging
from runner._frames import FrameServer
from runner._invocation import Cancel
from tests.runner.runner_helpers import AUTH
from tests.runner.test_frame_threads import FrameConn


def _run(raw: bytes, _departure: Cancel) -> tuple[int, bytes] | None:
    if json.loads(raw).get("boom"):
        raise RuntimeError("a runner bug")
    return 200, raw


@pytest.fixture
def server() -> Iterator[tuple[FrameServer, int]]:
    frames = FrameServer(
        _run, auth=AUTH.encode(), max_envelope=1024, idle_s=5.0, oversize=b"{}", max_connections=8
    )
    port = frames.start("127.0.0.1", 0)
    yield frames, port
    frames.close(join_s=5.0)


def test_a_call_that_raises_closes_its_connection_and_is_logged(
    server: tuple[FrameServer, int], capsys: pytest.CaptureFixture[str]
) -> None:
    _frames, port = server
    configure_logging(fmt="json", level="info")
    try:
        broken = FrameConn(port)
        broken.hello()
        broken.send({"boom": True})
        with pytest.raises(EOFError):
            broken.answer()
        broken.close()
        fine = FrameConn(port)
        fine.hello()
        fine.send({"ok": 1})
        assert fine.answer() == (200, {"ok": 1})
        fine.close()
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    failed = [json.loads(line) for line in err.splitlines() if "frame_connection_failed" in line]
    assert len(failed) == 1 and failed[0]["exception"][0]["exc_value"] == "a runner bug", err


def test_closing_the_server_ends_its_idle_connections(server: tuple[FrameServer, int]) -> None:
    frames, port = server
    idle = FrameConn(port)
    idle.hello()
    frames.close(join_s=5.0)
    assert idle.at_eof()
    idle.close()
