"""`extctl config set NAME --tenant T k=v... [--replace]`: merge keys into an install's config, or
replace it (either way a new config version, validated against the version's config_schema)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import call, parse_pairs
from cli.commands.installs import change_summary
from cli.output import emit

app = typer.Typer(help="Install config.", no_args_is_help=True)


@app.command("set")
def set_config(
    name: Annotated[str, typer.Argument(help="extension name")],
    pairs: Annotated[list[str], typer.Argument(metavar="K=V...", help="values parse as JSON when they can")],
    tenant: Annotated[str, typer.Option("--tenant")],
    replace: Annotated[
        bool, typer.Option("--replace", help="the config becomes exactly these keys (default: merge)")
    ] = False,
) -> None:
    """Set these keys in the install's config (the other keys stay), or with --replace set the config
    to exactly these keys."""
    config = parse_pairs(pairs, what="config", typed=True)
    out = call(
        "PUT",
        f"/v1/tenants/{tenant}/installs/{name}/config",
        json_body={"config": config, "replace": replace},
        spinner="updating config",
    )
    emit(out, human=change_summary(out) + f"\n  config version {out['config_version']}")
