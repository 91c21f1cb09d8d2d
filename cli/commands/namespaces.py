"""`extctl namespaces add|ls|rm`: namespace ownership (RegisterNamespace / RemoveNamespace workflows)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer(
    help="Namespace ownership: which publisher may publish new extension names under a prefix.",
    no_args_is_help=True,
)


@app.command("add")
def add(
    prefix: Annotated[str, typer.Argument(help="name prefix at a dot boundary, e.g. com.acme")],
    publisher: Annotated[str, typer.Option("--publisher", help="the publisher that owns the prefix")],
) -> None:
    """Give PREFIX to publisher P (admin); names already published under it keep their owner."""
    out = call(
        "PUT",
        f"/v1/namespaces/{quote(prefix, safe='')}",
        json_body={"publisher": publisher},
        spinner="registering namespace",
    )
    state = "registered" if out["added"] else "already registered"
    emit(
        out,
        human=f"{out['prefix']} ({state} for publisher {out['publisher']}; workflow {out['workflow_id']})",
    )


@app.command("rm")
def rm(prefix: Annotated[str, typer.Argument(help="a registered prefix, e.g. com.acme")]) -> None:
    """Free PREFIX for new names (admin); names published under it keep their owner."""
    out = call("DELETE", f"/v1/namespaces/{quote(prefix, safe='')}", spinner="removing namespace")
    human = (
        f"removed {out['prefix']} (was publisher {out['publisher']}'s; workflow {out['workflow_id']})"
        if out["removed"]
        else f"{out['prefix']} was not registered (workflow {out['workflow_id']})"
    )
    emit(out, human=human)


@app.command("ls")
def ls() -> None:
    """List namespaces and their publishers."""
    rows = call("GET", "/v1/namespaces")
    lines = [f"{n['prefix']}  {n['publisher']}  {n['source']}" for n in rows]
    emit(rows, human="\n".join(lines) or "no namespaces")
