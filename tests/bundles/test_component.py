"""bundles.component: only components of world extplane:extension/runner pass.

Variants are built at test time from WAT + an edited WIT with the real wasm-tools binary, so each
refusal is produced by an actual component, not a hand-made JSON description.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bundles.component import WIT_DIR, check_component
from bundles.errors import InvalidBundle
from schema.errors import ErrorCode
from tests.bundles.bundle_helpers import COMPONENT, CORE_MODULE, HANDLER_WAT, build_component

REAL_WIT = (WIT_DIR / "extplane.wit").read_text(encoding="utf-8")

# A guest importing log.emit: (level, message ptr, message len, return-area ptr).
LOG_IMPORT = '(import "extplane:extension/log@1.0.0" "emit" (func $emit (param i32 i32 i32 i32)))'


def _with_import(wat: str, import_line: str) -> str:
    return wat.replace("(module\n", f"(module\n  {import_line}\n", 1)


def test_fixture_component_passes() -> None:
    info = check_component(COMPONENT)
    assert info.exports == ("handler",)
    assert info.imports == ("extplane:extension/types@1.0.0",)


def test_component_importing_a_world_interface_passes(tmp_path: Path) -> None:
    wasm = build_component(tmp_path, wat=_with_import(HANDLER_WAT, LOG_IMPORT))
    assert "extplane:extension/log@1.0.0" in check_component(wasm).imports


def test_wasi_imports_are_allowed(tmp_path: Path) -> None:
    wit = REAL_WIT.replace("world runner {", "world runner {\n  import wasi:cli/environment@0.2.0;", 1)
    wit += (
        "\npackage wasi:cli@0.2.0 {\n  interface environment {\n"
        "    get-arguments: func() -> list<string>;\n  }\n}\n"
    )
    wat = _with_import(
        HANDLER_WAT, '(import "wasi:cli/environment@0.2.0" "get-arguments" (func (param i32)))'
    )
    wasm = build_component(tmp_path, wat=wat, wit=wit)
    assert "wasi:cli/environment@0.2.0" in check_component(wasm).imports


@pytest.mark.parametrize(
    ("wasm", "fragment"),
    [
        (CORE_MODULE, "is a core WebAssembly module, not a component"),
        (b"", "is not WebAssembly"),
        (b"\x7fELF" + bytes(60), "is not WebAssembly"),
        (b"\0asm\x0d\x00\x01\x00" + b"\xff" * 8, "is not a valid component"),
        (b"\0asm\x0d\x00\x02\x00", "unknown WebAssembly header"),
        (COMPONENT[: len(COMPONENT) // 2], "is not a valid component"),
    ],
    ids=["core-module", "empty", "elf", "garbage-section", "unknown-layer", "truncated"],
)
def test_non_components_are_refused(wasm: bytes, fragment: str) -> None:
    with pytest.raises(InvalidBundle) as info:
        check_component(wasm)
    assert info.value.code == ErrorCode.INVALID_BUNDLE
    assert fragment in info.value.message


def test_missing_handler_export_is_named(tmp_path: Path) -> None:
    wit = REAL_WIT.replace("export handler:", "export serve:")
    wat = HANDLER_WAT.replace('(export "handler")', '(export "serve")')
    with pytest.raises(InvalidBundle, match="does not export `handler`"):
        check_component(build_component(tmp_path, wat=wat, wit=wit))


def test_extra_exports_are_tolerated_and_reported(tmp_path: Path) -> None:
    """The runner only calls `handler`; componentize-py guests also export an internal `exports`."""
    wit = REAL_WIT.replace("  export handler:", "  export debug: func() -> u32;\n  export handler:")
    wat = HANDLER_WAT.replace(
        '  (func (export "handler")',
        '  (func (export "debug") (result i32) (i32.const 1))\n  (func (export "handler")',
    )
    info = check_component(build_component(tmp_path, wat=wat, wit=wit))
    assert info.exports == ("handler", "debug")


def test_handler_with_another_signature_is_refused(tmp_path: Path) -> None:
    # Same names, but the guest's copy of the WIT added a field to `response`.
    wit = REAL_WIT.replace("    status: u16,\n", "    status: u16,\n    reason: u32,\n", 1)
    with pytest.raises(InvalidBundle, match="another signature"):
        check_component(build_component(tmp_path, wit=wit))


def test_unknown_interface_import_is_named(tmp_path: Path) -> None:
    wit = REAL_WIT.replace("world runner {", "world runner {\n  import acme:evil/net@1.0.0;", 1)
    wit += "\npackage acme:evil@1.0.0 {\n  interface net {\n    connect: func(host: string) -> u32;\n  }\n}\n"
    wat = _with_import(
        HANDLER_WAT, '(import "acme:evil/net@1.0.0" "connect" (func (param i32 i32) (result i32)))'
    )
    with pytest.raises(InvalidBundle, match="unknown interface 'acme:evil/net@1.0.0'"):
        check_component(build_component(tmp_path, wat=wat, wit=wit))


def test_unknown_function_in_a_known_interface_is_named(tmp_path: Path) -> None:
    wit = REAL_WIT.replace(
        "  emit: func(level: level, message: string) -> result<_, log-error>;",
        "  emit: func(level: level, message: string) -> result<_, log-error>;\n  shell: func(cmd: string);",
    )
    wat = _with_import(HANDLER_WAT, '(import "extplane:extension/log@1.0.0" "shell" (func (param i32 i32)))')
    with pytest.raises(InvalidBundle, match="unknown function 'shell'"):
        check_component(build_component(tmp_path, wat=wat, wit=wit))


def test_import_with_another_signature_is_named(tmp_path: Path) -> None:
    wit = REAL_WIT.replace(
        "get: func(key: string) -> result<string, secret-error>;", "get: func(key: u32) -> u32;"
    )
    wat = _with_import(
        HANDLER_WAT, '(import "extplane:extension/secrets@1.0.0" "get" (func (param i32) (result i32)))'
    )
    with pytest.raises(InvalidBundle, match="secrets@1.0.0#get with another signature"):
        check_component(build_component(tmp_path, wat=wat, wit=wit))


def test_freestanding_function_import_is_named(tmp_path: Path) -> None:
    wit = REAL_WIT.replace("world runner {", "world runner {\n  import escape: func();", 1)
    wat = _with_import(HANDLER_WAT, '(import "$root" "escape" (func))')
    with pytest.raises(InvalidBundle, match="imports 'escape'"):
        check_component(build_component(tmp_path, wat=wat, wit=wit))
