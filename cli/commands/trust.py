"""`extctl trust add|revoke|ls`: the trust policy (AddTrustKey / RevokeKey workflows)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import call
from cli.output import emit, fail

app = typer.Typer(help="Trust policy: which keys may sign for which publisher.", no_args_is_help=True)


@app.command("add")
def add(
    pubfile: Annotated[Path, typer.Argument(help="Ed25519 public key (PEM), e.g. signing.pub")],
    publisher: Annotated[str, typer.Option("--publisher", help="the only publisher this key signs for")],
    expires: Annotated[
        datetime | None, typer.Option("--expires", help="expiry, ISO 8601 (UTC if no zone given)")
    ] = None,
) -> None:
    """Trust PUBFILE for publisher P; prints the key id."""
    try:
        pem = pubfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail("invalid_request", f"cannot read {pubfile}: {exc}")
    body: dict[str, Any] = {"publisher": publisher, "public_key_pem": pem}
    if expires is not None:
        body["expires_at"] = (expires if expires.tzinfo else expires.replace(tzinfo=UTC)).isoformat()
    out = call("POST", "/v1/trust/keys", json_body=body, spinner="adding trust key")
    state = "added" if out["added"] else "already trusted"
    emit(
        out,
        human=f"{out['key_id']} ({state} for publisher {out['publisher']}; workflow {out['workflow_id']})",
    )


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="key id, e.g. ed25519:0123…")],
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Revoke a key: versions it signed are revoked, installs on them quarantined."""
    out = call(
        "POST", f"/v1/trust/keys/{key_id}/revoke", json_body={"reason": reason}, spinner="revoking key"
    )
    versions = ", ".join(f"{v['name']}@{v['version']}" for v in out["revoked_versions"]) or "none"
    quarantined = (
        ", ".join(f"{q['tenant_id']}/{q['extension']}" for q in out["quarantined_installs"]) or "none"
    )
    emit(
        out,
        human="\n".join(
            [
                f"revoked {out['key_id']}" + (" (was already revoked)" if out["already_revoked"] else ""),
                f"  revoked versions      {versions}",
                f"  quarantined installs  {quarantined}",
                f"  workflow              {out['workflow_id']}",
            ]
        ),
    )


@app.command("ls")
def ls() -> None:
    """List trust keys."""
    keys = call("GET", "/v1/trust/keys")
    lines = [
        f"{k['key_id']}  {k['publisher']}  "
        + ("revoked" if k["revoked_at"] else f"expires {k['expires_at']}" if k["expires_at"] else "active")
        for k in keys
    ]
    emit(keys, human="\n".join(lines) or "no trust keys")
