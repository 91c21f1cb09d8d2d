"""`--json` anywhere on the command line: `extctl --json status ...` and `extctl status ... --json` (or
`extctl tokens --json create ...`) mean the same thing.

The root callback owns the flag; this group class, used for the root `extctl` app, copies it onto
every command and nested group of the tree typer builds, as a flag that only switches `STATE.json_mode`
on and passes no value to the command function. Click parses it like any other option, so `--json` as
the value of another option (`--data --json`) or after `--` stays a value. A command that declares its
own `--json` keeps it (and must honour `STATE.json_mode` itself).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

# typer vendors click (0.29+): the parameter and context types of the tree it builds.
from typer._click import core as click
from typer.core import TyperGroup

from cli.output import STATE

JSON_FLAG = "--json"
ROOT_PARAM = "json_output"  # the root callback's parameter name (cli.main._root)


def _switch_on(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    # Only ever turns JSON on: the root callback, which runs before any subcommand is parsed,
    # has already set the mode from the flag's position before the subcommand.
    if value:
        STATE.json_mode = True
    return value


def has_json_flag(command: click.Command) -> bool:
    return any(JSON_FLAG in getattr(p, "opts", ()) for p in command.params)


def _add_flag(commands: Iterable[click.Command], template: click.Parameter) -> None:
    for command in commands:
        if not has_json_flag(command):
            flag = copy.copy(template)
            flag.expose_value = False
            flag.callback = _switch_on
            command.params.append(flag)
        if isinstance(command, TyperGroup):
            _add_flag(command.commands.values(), template)


class JsonEverywhereGroup(TyperGroup):
    """The root group: every command and group below it accepts the root's `--json` flag too."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        template = next(p for p in self.params if p.name == ROOT_PARAM)
        _add_flag(self.commands.values(), template)
