"""`extctl`: the dev stack, local bundle tools, and a thin client of the operator API."""

from __future__ import annotations

import importlib
import sys

import typer

# typer vendors click (0.29+); its exceptions are the ones raised while parsing arguments.
from typer._click import exceptions as click

from cli.json_flag import JsonEverywhereGroup
from cli.output import STATE
from core.process import run_main

app = typer.Typer(
    name="extctl",
    cls=JsonEverywhereGroup,  # `--json` also after the subcommand
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
    ("namespaces", "namespaces"),
    ("master_key", "master-key"),
    ("publish", None),
    ("installs", None),
    ("config", "config"),
    ("secrets", "secrets"),
    ("limits", "limits"),
    ("rollout", "rollout"),
    ("schedules", "schedules"),
    ("debug", "debug"),
    ("audit", None),
    ("executions", None),
    ("tokens", "tokens"),
    ("call", None),
    ("logs", None),
]


@app.callback()
def _root(
    json_output: bool = typer.Option(
        False, "--json", help="machine-readable output (also accepted after any command)"
    ),
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


def usage_reason(exc: click.UsageError) -> str:
    """A usage error in one line that quotes no argument: click's own messages do (`No such option:
    --sk-live-…`, `Got unexpected extra argument (…)`, `'…' is not a valid integer`), and a misplaced
    secret value is exactly what lands there. Only parameter names and click's suggestions are shown."""
    where = exc.ctx.command_path if exc.ctx is not None else "extctl"
    hint = f"; see `{where} --help`"
    if isinstance(exc, click.MissingParameter | click.BadOptionUsage):
        return exc.format_message().rstrip(".") + hint  # names the parameter, never a value
    if isinstance(exc, click.NoSuchOption):
        known = f" (did you mean {', '.join(sorted(exc.possibilities))}?)" if exc.possibilities else ""
        return f"an argument looks like an option {where} does not have (not shown){known}" + hint
    if isinstance(exc, click.BadParameter):
        names = list(getattr(exc.param, "opts", None) or []) or [getattr(exc.param, "name", None) or "?"]
        return f"invalid value for {' / '.join(names)} (not shown)" + hint
    return "unexpected or misplaced arguments (not shown)" + hint


def _invoke() -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="extctl", standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        exc.show()  # the help text, as in standalone mode
        raise SystemExit(exc.exit_code) from None
    except click.UsageError as exc:
        sys.stderr.write(f"error: invalid_request: {usage_reason(exc)}\n")
        raise SystemExit(2) from None
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        raise SystemExit(1) from None
    except click.ClickException as exc:  # e.g. a file argument that cannot be opened
        sys.stderr.write(f"error: invalid_request: {exc.format_message()}\n")
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def main() -> None:
    # run_main: a command that used the Temporal client must not abort in interpreter teardown.
    run_main(_invoke)
