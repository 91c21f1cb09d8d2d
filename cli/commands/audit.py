"""`extctl audit [--tenant T] [--extension NAME]`: every state change, newest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer()


def _line(e: dict[str, Any]) -> str:
    what = e["action"]
    subject = "/".join(x for x in (e["tenant_id"], e["extension"]) if x)
    if e["version"]:
        subject += f"@{e['version']}"
    return f"{e['at']}  {e['actor']}  {what}  {subject or '-'}\n    {e['workflow_id']}  {e['ui_url']}"


@app.command("audit")
def audit(
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    extension: Annotated[str | None, typer.Option("--extension")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
) -> None:
    """When, who, what, workflow id and Temporal UI link of each change."""
    events = call("GET", "/v1/audit", params={"tenant": tenant, "extension": extension, "limit": limit})
    emit(events, human="\n".join(_line(e) for e in events) or "no audit events")
