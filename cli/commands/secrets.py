"""`extctl secrets set NAME --tenant T k=v...`: replace an install's secrets.

The values travel to the operator API over HTTP(S), which seals them before they enter Temporal;
nothing prints them back, only their key names and the new secrets version.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import call, parse_pairs
from cli.commands.installs import change_summary
from cli.output import emit

app = typer.Typer(help="Install secrets.", no_args_is_help=True)


@app.command("set")
def set_secrets(
    name: Annotated[str, typer.Argument(help="extension name")],
    pairs: Annotated[list[str], typer.Argument(metavar="K=V...")],
    tenant: Annotated[str, typer.Option("--tenant")],
) -> None:
    """Set the install's secrets to exactly these keys."""
    secrets = parse_pairs(pairs, what="secret", typed=False)
    out = call(
        "PUT",
        f"/v1/tenants/{tenant}/installs/{name}/secrets",
        json_body={"secrets": secrets},
        spinner="updating secrets",
    )
    keys = ", ".join(out.get("secret_keys") or sorted(secrets))
    emit(out, human=change_summary(out) + f"\n  secrets version {out['secrets_version']} ({keys})")
