"""Structured logs to the runner log and the tenant's debug stream (`cap:log.emit`, granted by default).

Logging never raises: a denied or rate-limited log line is dropped.
"""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import log as _log


def _emit(level: _log.Level, message: str) -> bool:
    try:
        _log.emit(level, message)
    except Err:
        return False
    return True


def debug(message: str) -> bool:
    return _emit(_log.Level.DEBUG, message)


def info(message: str) -> bool:
    return _emit(_log.Level.INFO, message)


def warn(message: str) -> bool:
    return _emit(_log.Level.WARN, message)


def error(message: str) -> bool:
    return _emit(_log.Level.ERROR, message)
