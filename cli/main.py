"""`extctl`: the dev stack, local bundle tools, and a thin client of the operator API."""

from __future__ import annotations

import importlib

import typer

from cli.output import STATE
from core.process import run_main

app = typer.Typer(
    name="extctl",
    help="extplane control tool: dev stack, bundles, and operator commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under cli.commands, group name or None for top-level commands)
_COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("dev", "dev"),
    ("keys", "keys"),
    ("bundle", "bundle"),
    ("demo", None),
    ("trust", "trust"),
    ("master_key", "master-key"),
    ("publish", None),
    ("installs", None),
    ("config", "config"),
    ("secrets", "secrets"),
    ("limits", "limits"),
    ("debug", "debug"),
    ("audit", None),
    ("executions", None),
    ("tokens", "tokens"),
    ("call", None),
    ("logs", None),
]


@app.callback()
def _root(
    json_output: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    STATE.json_mode = json_output


def _register() -> None:
    for module_name, group in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"cli.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cli.commands.{module_name}":
                continue  # command group not built yet
            raise
        sub: typer.Typer = module.app
        if group:
            app.add_typer(sub, name=group)
        else:
            for cmd in sub.registered_commands:
                app.registered_commands.append(cmd)


_register()


def main() -> None:
    # run_main: a command that used the Temporal client must not abort in interpreter teardown.
    run_main(app)
