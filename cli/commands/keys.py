"""`extctl keys`: local Ed25519 signing keys for bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bundles.signing import generate_keypair, key_id, private_key_to_pem, public_key_to_pem
from cli.output import emit, fail

app = typer.Typer(help="Signing keys for bundles.", no_args_is_help=True)

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key (losing a private key orphans every bundle it signed); the mode is
    # set at creation so the private key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="directory for signing.key and signing.pub")],
) -> None:
    """Write DIR/signing.key (Ed25519 PKCS#8 PEM, mode 0600) and DIR/signing.pub; print the key id."""
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            fail("conflict", f"{path} already exists; refusing to overwrite a key")
    private, public = generate_keypair()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(private_path, private_key_to_pem(private), 0o600)
        _write_new(public_path, public_key_to_pem(public), 0o644)
    except OSError as exc:
        fail("invalid_request", f"cannot write keys to {out}: {exc.strerror or exc}")
    kid = key_id(public)
    emit(
        {"key_id": kid, "private_key": str(private_path), "public_key": str(public_path)},
        human=kid,
    )
