"""`extctl audit [--tenant T] [--extension NAME] [--since WHEN] [--action A] [--limit K]`: every state
change, newest first.

`--since` takes what `GET /v1/audit?since=` takes (an ISO-8601 timestamp with a time zone), or a
duration back from now (`90s`, `30m`, `1h`, `2d`, `1w`), which the CLI turns into a timestamp: the API
stays free of the client's clock. `--action` is an exact action, or a prefix ending in `*`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from cli.client import call
from cli.output import emit, fail

app = typer.Typer()

_RELATIVE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_param(value: str | None, *, now: datetime | None = None) -> str | None:
    """The `since` query value: a relative duration becomes a UTC timestamp, anything else is passed
    on for the API to check (it answers 400 invalid_request naming `since`)."""
    if value is None:
        return None
    relative = _RELATIVE.fullmatch(value.strip())
    if relative is None:
        if re.fullmatch(r"\d+", value.strip()):
            fail("invalid_request", "--since needs a unit (s, m, h, d, w) or an ISO-8601 timestamp")
        return value
    amount, unit = int(relative[1]), relative[2]
    at = (now or datetime.now(UTC)) - timedelta(seconds=amount * _UNIT_SECONDS[unit])
    return at.isoformat()


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
    since: Annotated[
        str | None,
        typer.Option("--since", help="ISO-8601 timestamp with a time zone, or a duration back: 30m, 1h, 2d"),
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="exact action, or a prefix ending in * (install*)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
) -> None:
    """When, who, what, workflow id and Temporal UI link of each change."""
    params = {
        "tenant": tenant,
        "extension": extension,
        "since": since_param(since),
        "action": action,
        "limit": limit,
    }
    events = call("GET", "/v1/audit", params=params)
    emit(events, human="\n".join(_line(e) for e in events) or "no audit events")
