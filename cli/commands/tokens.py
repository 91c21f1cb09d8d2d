"""`extctl tokens create|ls|revoke`: API tokens (printed once at creation, stored only hashed).

`create` keeps CONTRACT.md's `--tenant T --scope S...`; `--name` is optional there, so a token created
without one is named `token-<12 hex of its id>`. Its identity (`name`, or `tenant/name`) is the Actor
that audit rows and Temporal's Actor search attribute show for the changes made with it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from cli.client import call
from cli.output import emit

app = typer.Typer(help="API tokens for the gateway and the operator API.", no_args_is_help=True)

_HEADER = ("ID", "IDENTITY", "TENANT", "STATUS", "SCOPES", "CREATED", "EXPIRES")


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
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="who uses it, e.g. alice or ci (a-z, 0-9, . _ -; unique among live tokens of the tenant); "
            "default token-<id>",
        ),
    ] = "",
    expires_in: Annotated[int | None, typer.Option("--expires-in", min=1, help="seconds")] = None,
) -> None:
    """Create a token; prints it (this is the only time it is shown)."""
    body: dict[str, Any] = {"tenant_id": tenant, "scopes": scope, "name": name}
    if expires_in is not None:
        body["expires_in_seconds"] = expires_in
    out = call("POST", "/v1/tokens", json_body=body, spinner="creating token")
    emit(out, human=out["token"])


def _cells(t: dict[str, Any]) -> tuple[str, ...]:
    return (
        t["token_id"],
        t["identity"],
        t["tenant_id"] or "(global)",
        t["status"],
        ",".join(t["scopes"]),
        str(t["created_at"]).replace("T", " ")[:19],
        str(t["expires_at"]).replace("T", " ")[:19] if t["expires_at"] else "-",
    )


def table(rows: list[dict[str, Any]]) -> str:
    lines = [_HEADER, *(_cells(t) for t in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


@app.command("ls")
def ls(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's tokens")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
) -> None:
    """List tokens, newest first (never the tokens or their hashes)."""
    rows = call("GET", "/v1/tokens", params={"tenant": tenant, "limit": limit})
    emit(rows, human=table(rows) if rows else "no tokens")


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="the token id (extctl tokens ls)")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Revoke a token for good; gateways stop accepting it at once (at the latest after their token
    cache TTL). Revoking a revoked token changes nothing."""
    out = call(
        "POST",
        f"/v1/tokens/{quote(token_id, safe='')}/revoke",
        json_body={"reason": reason},
        spinner="revoking token",
    )
    note = " (was already revoked)" if out["already_revoked"] else ""
    emit(
        out,
        human=f"revoked {out['token_id']} ({out['identity']}){note}; workflow {out['workflow_id']}",
    )
