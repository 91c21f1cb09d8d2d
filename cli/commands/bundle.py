"""`extctl bundle`: local bundle tools (pack, sign, verify, inspect); none of them needs a server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from bundles.inspect import InspectedBundle, inspect_bundle
from bundles.pack import pack_directory, write_bundle
from bundles.signing import (
    Statement,
    load_private_key,
    load_public_key,
    parse_signature_document,
    sign_bundle,
    verify_signature,
)
from cli.output import emit, fail, fail_from
from core.errors import ExtplaneError

app = typer.Typer(help="Pack, sign, verify and inspect bundles locally.", no_args_is_help=True)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn domain and file errors into the one-line failure every extctl command gives."""
    try:
        yield
    except ExtplaneError as exc:
        fail_from(exc)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        fail("invalid_request", f"cannot access{where}: {exc.strerror or exc}")


def _load(path: Path, *, check_wasm: bool) -> InspectedBundle:
    return inspect_bundle(path.read_bytes(), check_wasm=check_wasm)


@app.command("pack")
def pack(
    src: Annotated[Path, typer.Argument(help="extension directory (manifest.json, dist/main.wasm, ui/)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="bundle file to write")],
) -> None:
    """Pack DIR into a reproducible bundle; print its content hash."""
    with _reported():
        data = pack_directory(src)
        digest = write_bundle(data, out)
    emit({"content_hash": digest, "size": len(data), "path": str(out)}, human=digest)


@app.command("sign")
def sign(
    bundle: Annotated[Path, typer.Argument(help="bundle file")],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (PEM)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="signature file to write")],
) -> None:
    """Write a detached signature of BUNDLE; the publisher comes from its manifest."""
    with _reported():
        inspected = _load(bundle, check_wasm=True)
        private = load_private_key(key.read_bytes())
        doc = sign_bundle(private, content_hash=inspected.content_hash, manifest=inspected.manifest)
        out.write_text(doc.dumps(), encoding="utf-8")
    stmt = doc.statement
    emit(
        {"key_id": doc.key_id, "statement": stmt.to_json(), "path": str(out)},
        human=f"signed {stmt.name}@{stmt.version} ({stmt.content_hash}) with {doc.key_id}",
    )


@app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="bundle file")],
    signature: Annotated[Path, typer.Option("--signature", help="signature file from `bundle sign`")],
    pubkey: Annotated[Path, typer.Option("--pubkey", help="Ed25519 public key (PEM)")],
) -> None:
    """Check that SIGFILE is PUBFILE's signature of exactly this bundle (hash, name, version, publisher)."""
    with _reported():
        inspected = _load(bundle, check_wasm=False)
        doc = parse_signature_document(signature.read_bytes())
        public = load_public_key(pubkey.read_bytes())
        expected = Statement.for_bundle(inspected.content_hash, inspected.manifest)
        verify_signature(doc, public, expected)
    emit(
        {"ok": True, "key_id": doc.key_id, "statement": expected.to_json()},
        human=f"ok: {expected.name}@{expected.version} ({expected.content_hash}) signed by {doc.key_id}",
    )


@app.command("inspect")
def inspect(bundle: Annotated[Path, typer.Argument(help="bundle file")]) -> None:
    """Safe unpack, manifest and component checks; print the manifest and content hash."""
    with _reported():
        inspected = _load(bundle, check_wasm=True)
    manifest = inspected.manifest.model_dump(mode="json", exclude_none=True)
    files = {name: len(content) for name, content in inspected.files.items()}
    data = {
        "content_hash": inspected.content_hash,
        "size": inspected.size,
        "manifest": manifest,
        "files": files,
        "imports": list(inspected.component.imports),
    }
    human = "\n".join(
        [
            f"content_hash: {inspected.content_hash}",
            f"size: {inspected.size}",
            "files:",
            *(f"  {name} ({size} bytes)" for name, size in files.items()),
            "imports:",
            *(f"  {name}" for name in inspected.component.imports),
            "manifest:",
            json.dumps(manifest, indent=2, sort_keys=True),
        ]
    )
    emit(data, human=human)
