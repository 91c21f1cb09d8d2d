"""`extctl debug enable|disable NAME --tenant T`: the operator flag that opens an install's debug stream
although its manifest does not grant `cap:debug.logs` (docs/debug-stream.md)."""

from __future__ import annotations

import typer

from cli.client import call
from cli.commands.installs import Name, Tenant, change_summary
from cli.output import emit

app = typer.Typer(help="The operator debug-stream flag of one install.", no_args_is_help=True)


def _set(name: str, tenant: str, *, enabled: bool) -> None:
    out = call(
        "PUT",
        f"/v1/tenants/{tenant}/installs/{name}/debug",
        json_body={"enabled": enabled},
        spinner="enabling debug stream" if enabled else "disabling debug stream",
    )
    emit(out, human=change_summary(out) + f"\n  debug flag {'on' if enabled else 'off'}")


@app.command("enable")
def enable(name: Name, tenant: Tenant) -> None:
    """Let tokens with scope ext:debug open the install's debug stream."""
    _set(name, tenant, enabled=True)


@app.command("disable")
def disable(name: Name, tenant: Tenant) -> None:
    """Clear the flag: from then on the stream opens only if the install grants cap:debug.logs."""
    _set(name, tenant, enabled=False)
