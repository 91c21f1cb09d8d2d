"""`extctl publish FILE --signature SIGFILE`: upload a signed bundle and run the publish workflow."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from cli.client import call
from cli.output import emit, fail

app = typer.Typer()

_CHUNK = 1 << 20


def _file_hash(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="bundle.tar.zst")],
    signature: Annotated[Path, typer.Option("--signature", help="signature document of `bundle sign`")],
) -> None:
    """Upload a bundle and publish it; prints name, version, content hash and workflow id."""
    try:
        content_hash = _file_hash(file)
        size = file.stat().st_size
        sig = base64.b64encode(signature.read_bytes()).decode()
    except OSError as exc:
        fail("invalid_request", f"cannot read {exc.filename}: {exc.strerror}")
    out = call(
        "POST",
        "/v1/bundles",
        content=_chunks(file),
        headers={
            "x-content-hash": content_hash,
            "x-bundle-signature": sig,
            "content-type": "application/octet-stream",
            "content-length": str(size),
        },
        spinner=f"publishing {file.name}",
    )
    if "operation_id" in out:
        # Still running after the API's wait (202): the workflow goes on; say where to follow it.
        op = out["operation_id"]
        emit(
            out, human=f"publishing continues in workflow {op}\n  {out['ui_url']}\n  GET /v1/operations/{op}"
        )
        return
    note = " (already published)" if out.get("already_published") else ""
    emit(
        out,
        human="\n".join(
            [
                f"published {out['name']}@{out['version']}{note}",
                f"  name          {out['name']}",
                f"  version       {out['version']}",
                f"  content hash  {out['content_hash']}",
                f"  workflow id   {out['workflow_id']}",
                f"  temporal ui   {out['ui_url']}",
            ]
        ),
    )
