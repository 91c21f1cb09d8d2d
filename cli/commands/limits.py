"""`extctl limits set NAME --tenant T --rps N --burst M`: the gateway rate limit of one install."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import call
from cli.commands.installs import change_summary
from cli.output import emit

app = typer.Typer(help="Per-install gateway rate limits.", no_args_is_help=True)


@app.command("set")
def set_limits(
    name: Annotated[str, typer.Argument(help="extension name")],
    tenant: Annotated[str, typer.Option("--tenant")],
    rps: Annotated[float | None, typer.Option("--rps", min=0.001, help="requests per second")] = None,
    burst: Annotated[int | None, typer.Option("--burst", min=1, help="bucket size")] = None,
) -> None:
    """Set requests per second and burst; an omitted value falls back to EXT_RATE_LIMIT_RPS/_BURST."""
    out = call(
        "PUT",
        f"/v1/tenants/{tenant}/installs/{name}/limits",
        json_body={"rps": rps, "burst": burst},
        spinner="updating limits",
    )
    emit(
        out, human=change_summary(out) + f"\n  rate limit {rps or 'default'} rps, burst {burst or 'default'}"
    )
