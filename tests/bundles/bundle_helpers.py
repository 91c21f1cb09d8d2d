"""Builders for bundle tests: extension directories, raw hostile archives, and tiny components.

Hostile archives are built with tarfile + zstandard directly (never with bundles.pack), so the tests do
not depend on the code they attack.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from bundles.component import WIT_DIR, find_wasm_tools

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COMPONENT = (FIXTURES / "handler.wasm").read_bytes()
CORE_MODULE = (FIXTURES / "core_module.wasm").read_bytes()
HANDLER_WAT = (FIXTURES / "handler.wat").read_text(encoding="utf-8")

MANIFEST: dict[str, Any] = {
    "name": "com.acme.hello",
    "publisher": "acme",
    "version": "1.0.0",
    "runtime": "wasm-component@1",
    "capabilities": ["cap:log.emit", "cap:ui.proxy"],
    "api": {"endpoints": [{"method": "GET", "path": "/status"}]},
    "ui": {"type": "iframe", "entry": "ui/index.html"},
}
UI_FILES = {"ui/index.html": b"<!doctype html><h1>hello</h1>\n", "ui/assets/app.js": b"console.log(1)\n"}


def manifest_bytes(**overrides: Any) -> bytes:
    return json.dumps({**MANIFEST, **overrides}, indent=2).encode()


def make_extension_dir(
    root: Path,
    *,
    manifest: bytes | None = None,
    wasm: bytes = COMPONENT,
    ui: dict[str, bytes] | None = None,
) -> Path:
    """An author's directory: manifest.json, dist/main.wasm, ui/**, plus sources pack must ignore."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_bytes(manifest if manifest is not None else manifest_bytes())
    (root / "dist").mkdir(exist_ok=True)
    (root / "dist" / "main.wasm").write_bytes(wasm)
    for name, content in (UI_FILES if ui is None else ui).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / "README.md").write_text("# hello\n")
    return root


@dataclass(frozen=True)
class Entry:
    """One raw tar member."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def file_entries(replace: dict[str, bytes] | None = None) -> list[Entry]:
    """The members of a valid bundle, with the contents of some paths replaced."""
    files = {"manifest.json": manifest_bytes(), "dist/main.wasm": COMPONENT, **UI_FILES, **(replace or {})}
    return [Entry(name, data) for name, data in files.items()]


def raw_tar(entries: list[Entry], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.type
            info.linkname = entry.linkname
            if entry.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def zst(data: bytes, *, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)


def archive(entries: list[Entry], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return zst(raw_tar(entries, fmt=fmt))


def snapshot(root: Path) -> set[str]:
    """Every path under `root` (files, dirs, links), relative, to prove nothing new appeared."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def build_component(
    tmp: Path, *, wat: str = HANDLER_WAT, wit: str | None = None, world: str = "runner"
) -> bytes:
    """Build a component from WAT against `wit` (a package text) or the project's WIT."""
    tools = str(find_wasm_tools())
    wat_file, core, embedded, out = tmp / "g.wat", tmp / "g.wasm", tmp / "e.wasm", tmp / "c.wasm"
    wat_file.write_text(wat, encoding="utf-8")
    wit_path = WIT_DIR
    if wit is not None:
        wit_path = tmp / "wit"
        wit_path.mkdir(exist_ok=True)
        (wit_path / "world.wit").write_text(wit, encoding="utf-8")
    for args in (
        ["parse", str(wat_file), "-o", str(core)],
        ["component", "embed", str(wit_path), "--world", world, str(core), "-o", str(embedded)],
        ["component", "new", str(embedded), "-o", str(out)],
    ):
        subprocess.run([tools, *args], check=True, capture_output=True)
    return out.read_bytes()
