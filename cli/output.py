"""How every extctl command reports: human text by default, JSON with --json, and on failure one line
`error: <code>: <message>` on stderr with a non-zero exit."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from core.errors import ExtplaneError


class OutputState:
    json_mode: bool = False


STATE = OutputState()


def emit(data: Any, *, human: str | None = None) -> None:
    """Print a result: JSON when --json is set, else `human` (or a key: value listing)."""
    if STATE.json_mode:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    elif human is not None:
        typer.echo(human)
    elif isinstance(data, dict):
        for k, v in data.items():
            typer.echo(f"{k}: {v}")
    else:
        typer.echo(str(data))


def fail(code: str, message: str, *, exit_code: int = 1) -> NoReturn:
    first_line = message.strip().splitlines()[0] if message.strip() else code
    if STATE.json_mode:
        typer.echo(json.dumps({"error": code, "message": first_line}), err=False)
    sys.stderr.write(f"error: {code}: {first_line}\n")
    raise typer.Exit(exit_code)


def fail_from(exc: ExtplaneError) -> NoReturn:
    fail(exc.code.value, exc.message)
