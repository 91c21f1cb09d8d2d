"""`extctl tokens create --tenant T --scope S...`: an API token (printed once, stored only hashed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer(help="API tokens for the gateway and the operator API.", no_args_is_help=True)


@app.command("create")
def create(
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="ext:read, ext:write, ext:debug, registry:publish, installs:manage, trust:manage, admin",
        ),
    ],
    tenant: Annotated[str | None, typer.Option("--tenant", help="omit for a global token")] = None,
    name: Annotated[str, typer.Option("--name", help="a label for the token")] = "",
    expires_in: Annotated[int | None, typer.Option("--expires-in", min=1, help="seconds")] = None,
) -> None:
    """Create a token; prints it (this is the only time it is shown)."""
    body: dict[str, Any] = {"tenant_id": tenant, "scopes": scope, "name": name}
    if expires_in is not None:
        body["expires_in_seconds"] = expires_in
    out = call("POST", "/v1/tokens", json_body=body, spinner="creating token")
    emit(out, human=out["token"])
