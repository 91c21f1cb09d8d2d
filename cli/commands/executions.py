"""`extctl executions --tenant T [--extension NAME] [--limit N] [--before ID]`: a tenant's calls as the
gateway recorded them, newest first (GET /v1/tenants/{tenant}/executions).

The next, older page: `--before` the smallest id shown (the last line).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer()

_HEADER = ("ID", "AT", "PRINCIPAL", "CALL", "STATUS", "OUTCOME", "MS", "FUEL", "VERSION")


def _cells(e: dict[str, Any]) -> tuple[str, ...]:
    principal = e["principal"] or "-"
    if e["operator"]:
        principal += " (operator)"
    at = str(e["at"]).replace("T", " ")[:23]
    return (
        str(e["id"]),
        at,
        principal,
        f"{e['method']} {e['extension']}{e['endpoint'] or ''}",
        str(e["status"]),
        e["outcome"],
        f"{e['duration_ms']:.1f}",
        "-" if e["fuel_consumed"] is None else str(e["fuel_consumed"]),
        e["version"] or "-",
    )


def table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns, one call per line; an endpoint is shown as its template (never the real path)."""
    lines = [_HEADER, *(_cells(e) for e in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


@app.command("executions")
def executions(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose calls to list")],
    extension: Annotated[str | None, typer.Option("--extension", help="only calls to this extension")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    before: Annotated[
        int | None, typer.Option("--before", min=1, help="only calls older than this id (the next page)")
    ] = None,
) -> None:
    """Who called which endpoint, when, with what status, duration and guest fuel."""
    rows = call(
        "GET",
        f"/v1/tenants/{quote(tenant, safe='')}/executions",
        params={"extension": extension, "limit": limit, "before": before},
    )
    emit(rows, human=table(rows) if rows else "no executions")
