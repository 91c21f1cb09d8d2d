"""The handler's parameter lowered two ways (runner/_adapter.py patch 6): into Python-owned memory
(borrowed) and through wasmtime-py's own, C-owned path. The C API reads both; they must be the same
value, field for field and byte for byte, and a bad value must fail the same way."""

from __future__ import annotations

import ctypes
from ctypes import byref
from typing import Any

import pytest
from wasmtime import _ffi as ffi
from wasmtime.component import Component

from runner import _adapter
from runner._adapter import record
from runner.compile import new_engine
from tests.runner.runner_helpers import FIXTURES

STRING, BOOL = ffi.WASMTIME_COMPONENT_STRING.value, ffi.WASMTIME_COMPONENT_BOOL.value
RECORD, LIST = ffi.WASMTIME_COMPONENT_RECORD.value, ffi.WASMTIME_COMPONENT_LIST.value


def _request_type() -> Any:
    _adapter.install()
    engine = new_engine()
    component = Component(engine, (FIXTURES / "echo.wasm").read_bytes())
    handler: Any = component.type.exports(engine)["handler"].ty
    params = handler.params
    assert [name for name, _ty in params] == ["req"]
    return params[0][1]


def _read(val: Any) -> Any:
    """A lowered value as plain Python, read without freeing anything."""
    kind = val.kind
    if kind == STRING:
        s = val.of.string
        return ("str", ctypes.string_at(s.data, s.size) if s.size else b"")
    if kind == BOOL:
        return ("bool", bool(val.of.boolean))
    if kind == RECORD:
        rec = val.of.record
        fields = []
        for i in range(rec.size):
            entry = rec.data[i]
            name = ctypes.string_at(entry.name.data, entry.name.size)
            fields.append((name, _read(entry.val)))
        return ("record", fields)
    if kind == LIST:
        items = val.of.list
        return ("list", [_read(items.data[i]) for i in range(items.size)])
    raise AssertionError(f"unexpected kind {kind}")


def _request(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "method": "POST",
        "path": "/items/42",
        "query": "a=1&b=2",
        "headers": [record(name="x-test", value="1")],
        "body": "hello",
        "body_base64": False,
    }
    return record(**{**fields, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"method": "", "path": "", "query": "", "headers": [], "body": ""},
        {"path": "/ünï/✓", "body": "héllo wörld " * 500, "body_base64": True},
        {"headers": [record(name=f"h-{i}", value="v" * i) for i in range(64)]},
        {"body": "nul\x00inside", "query": "x" * 70_000},
    ],
    ids=["typical", "empty", "non-ascii", "many-headers", "nul-and-large"],
)
def test_borrowed_and_owned_lowering_give_the_same_value(overrides: dict[str, Any]) -> None:
    ty = _request_type()
    assert _adapter._borrowable(ty)
    value = _request(**overrides)
    borrowed = ffi.wasmtime_component_val_t()
    keep: list[object] = []
    _adapter._lower_borrowed(ty, value, borrowed, keep)
    owned = ffi.wasmtime_component_val_t()
    ty.convert_to_c(None, value, ctypes.pointer(owned))
    try:
        assert _read(borrowed) == _read(owned)
    finally:
        ffi.wasmtime_component_val_delete(byref(owned))


@pytest.mark.parametrize(
    "overrides",
    [{"query": 7}, {"headers": [record(name="x", value=3)]}, {"body_base64": "no"}, {"headers": "x"}],
    ids=["int-for-string", "int-in-a-header", "str-for-bool", "str-for-list"],
)
def test_a_value_of_the_wrong_type_fails_both_ways_alike(overrides: dict[str, Any]) -> None:
    ty = _request_type()
    value = _request(**overrides)
    with pytest.raises(TypeError):
        _adapter._lower_borrowed(ty, value, ffi.wasmtime_component_val_t(), [])
    with pytest.raises(TypeError):  # the owned path frees what it lowered before raising (patch 5)
        ty.convert_to_c(None, value, ctypes.pointer(ffi.wasmtime_component_val_t()))


def test_types_outside_strings_bools_records_and_lists_take_the_owned_path() -> None:
    engine = new_engine()
    component = Component(engine, (FIXTURES / "hostile.wasm").read_bytes())
    log_iface: Any = component.type.imports(engine)["extplane:extension/log@1.0.0"].ty
    emit: Any = log_iface.exports(engine)["emit"].ty
    # emit(level: enum, message: string): the enum is not laid out by the borrowed path
    assert [_adapter._borrowable(ty) for _name, ty in emit.params] == [False, True]
    assert _adapter._borrowable(_request_type())
