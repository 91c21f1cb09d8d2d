"""The error for an install config Postgres cannot store, shared by the operator API (which refuses it
before any workflow starts) and the registry write (which refuses it for every other client)."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from schema.errors import ErrorCode
from schema.jsontext import json_path, unstorable


def require_storable_config(config: Any) -> None:
    """Raise 400 invalid_config naming the JSON path of a NUL, lone surrogate or NaN/Infinity."""
    unfit = unstorable(config)
    if unfit is not None:
        path, problem = json_path(unfit[0]), unfit[1]
        raise InvalidInput(
            f"config {path} {problem}",
            code=ErrorCode.INVALID_CONFIG,
            details={"issues": [{"path": path, "message": problem}]},
        )
