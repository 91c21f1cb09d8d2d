"""Ending a process that used the Temporal client.

temporalio's Rust bridge runs Tokio threads that can still call into Python while the interpreter
finalizes; the process then aborts (SIGABRT, "PyGILState_Release: thread state ... must be current
when releasing", temporalio/sdk-python#300) even though its work succeeded. Short-lived commands
(`extctl dev up`, `python -m core.temporal_setup`, the worker healthcheck) hit it under load, which
turns a success into exit status -6. Once the bridge has run, such a process therefore exits with
`os._exit` after flushing what it wrote, skipping the finalization that races with those threads.
Nothing else relies on interpreter teardown there: every resource is closed by its own `async with`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

_bridge_used = False


def note_temporal_bridge() -> None:
    """Called before the Temporal client connects: from then on, `finish` skips finalization."""
    global _bridge_used  # one process-wide fact, set once
    _bridge_used = True


def temporal_bridge_used() -> bool:
    return _bridge_used


def exit_code(exc: SystemExit) -> int:
    """The status `SystemExit(code)` would give: None is 0, an int is itself, a message is 1 (printed)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # noqa: T201 - what the interpreter would print on its own
    return 1


def finish(code: int) -> NoReturn:
    """End the process with `code`; after Temporal was used, without interpreter finalization."""
    if not _bridge_used:
        raise SystemExit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it anyway
            pass
    os._exit(code)


def run_main(entry: Callable[[], object]) -> NoReturn:
    """Run a console entry point and `finish` with the status the interpreter would have given."""
    try:
        entry()
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    else:
        code = 0
    finish(code)
