"""The handler's values converted two ways: packed (runner/_packed.py, what the runner runs) and
through wasmtime-py's own, C-owned path (runner/_adapter.py patches 4 and 5). The C API reads a
packed request exactly as an owned one, and a lifted response reads the same both ways: field for
field and byte for byte, with the same failures and the same bounds."""

from __future__ import annotations

import ctypes
from ctypes import byref
from typing import Any

import pytest
from wasmtime import _ffi as ffi
from wasmtime.component import Component

from runner import _adapter, _packed
from runner._adapter import record
from runner.compile import new_engine
from tests.runner.runner_helpers import FIXTURES

STRING, BOOL = ffi.WASMTIME_COMPONENT_STRING.value, ffi.WASMTIME_COMPONENT_BOOL.value
RECORD, LIST = ffi.WASMTIME_COMPONENT_RECORD.value, ffi.WASMTIME_COMPONENT_LIST.value
U16 = ffi.WASMTIME_COMPONENT_U16.value


def _handler_type() -> Any:
    _adapter.install()
    engine = new_engine()
    component = Component(engine, (FIXTURES / "echo.wasm").read_bytes())
    handler: Any = component.type.exports(engine)["handler"].ty
    assert [name for name, _ty in handler.params] == ["req"]
    return handler


def _request_type() -> Any:
    return _handler_type().params[0][1]


def _response_type() -> Any:
    return _handler_type().result


def _read(val: Any) -> Any:
    """A C value as plain Python, read without freeing anything."""
    kind = val.kind
    if kind == STRING:
        s = val.of.string
        return ("str", ctypes.string_at(s.data, s.size) if s.size else b"")
    if kind == BOOL:
        return ("bool", bool(val.of.boolean))
    if kind == U16:
        return ("u16", val.of.u16)
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


def _response(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "status": 201,
        "headers": [record(name="content-type", value="text/plain")],
        "body": "hello",
        "body_base64": False,
    }
    return record(**{**fields, **overrides})


VALUES = [
    {},
    {"method": "", "path": "", "query": "", "headers": [], "body": ""},
    {"path": "/ünï/✓", "body": "héllo wörld " * 500, "body_base64": True},
    {"headers": [record(name=f"h-{i}", value="v" * i) for i in range(64)]},
    {"body": "nul\x00inside", "query": "x" * 70_000},
]
IDS = ["typical", "empty", "non-ascii", "many-headers", "nul-and-large"]


@pytest.mark.parametrize("overrides", VALUES, ids=IDS)
def test_packed_and_owned_lowering_give_the_same_value(overrides: dict[str, Any]) -> None:
    ty = _request_type()
    plan = _packed.plan(ty)
    assert plan is not None
    value = _request(**overrides)
    packed = _packed.lower([plan], (value,))
    owned = ffi.wasmtime_component_val_t()
    ty.convert_to_c(None, value, ctypes.pointer(owned))
    try:
        assert _read(packed.vals[0]) == _read(owned)
    finally:
        ffi.wasmtime_component_val_delete(byref(owned))


def test_packed_arrays_are_aligned_for_the_c_structs() -> None:
    plan = _packed.plan(_request_type())
    assert plan is not None
    for body in ("", "a", "abc", "x" * 13):  # strings of every length mod 8 before the header array
        packed = _packed.lower([plan], (_request(method=body, path=body, query=body),))
        rec = packed.vals[0].of.record
        headers = rec.data[3].val.of.list
        assert ctypes.addressof(rec.data.contents) % 8 == 0
        assert ctypes.addressof(headers.data.contents) % 8 == 0
        assert ctypes.addressof(headers.data[0].of.record.data.contents) % 8 == 0


@pytest.mark.parametrize(
    "overrides",
    [{"query": 7}, {"headers": [record(name="x", value=3)]}, {"body_base64": "no"}, {"headers": "x"}],
    ids=["int-for-string", "int-in-a-header", "str-for-bool", "str-for-list"],
)
def test_a_value_of_the_wrong_type_fails_both_ways_alike(overrides: dict[str, Any]) -> None:
    ty = _request_type()
    plan = _packed.plan(ty)
    assert plan is not None
    value = _request(**overrides)
    with pytest.raises(TypeError):
        _packed.lower([plan], (value,))
    with pytest.raises(TypeError):  # the owned path frees what it lowered before raising (patch 5)
        ty.convert_to_c(None, value, ctypes.pointer(ffi.wasmtime_component_val_t()))


def test_an_integer_out_of_range_is_refused_not_wrapped() -> None:
    plan = _packed.plan(_response_type())
    assert plan is not None
    for status in (-1, 65_536):
        with pytest.raises(TypeError, match="out of range"):
            _packed.lower([plan], (_response(status=status),))
    packed = _packed.lower([plan], (_response(status=65_535),))
    assert _read(packed.vals[0])[1][0] == (b"status", ("u16", 65_535))


def _owned(ty: Any, value: Any) -> Any:
    c = ffi.wasmtime_component_val_t()
    ty.convert_to_c(None, value, ctypes.pointer(c))
    return c


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"headers": [], "body": "", "status": 200},
        {"body": "wörld ✓ " * 500, "body_base64": True, "status": 599},
        {"headers": [record(name=f"h-{i}", value="v" * i) for i in range(64)]},
    ],
    ids=["typical", "empty", "non-ascii", "many-headers"],
)
def test_packed_and_upstream_lifting_read_the_same_value(overrides: dict[str, Any]) -> None:
    ty = _response_type()
    plan = _packed.plan(ty)
    assert plan is not None
    value = _response(**overrides)
    c = _owned(ty, value)
    try:
        packed = _packed.lift(plan, c, max_bytes=1 << 20, max_items=256)
    finally:
        ffi.wasmtime_component_val_delete(byref(c))
    upstream = ty.convert_from_c(_owned(ty, value))  # frees as it reads
    assert packed == upstream and upstream == packed
    assert type(packed.status) is int and type(packed.body) is str
    assert type(getattr(packed, "body-base64")) is bool
    assert [(h.name, h.value) for h in packed.headers] == [(h.name, h.value) for h in value.headers]


@pytest.mark.parametrize("owned", [True, False], ids=["check-then-upstream", "packed"])
def test_lift_bounds_are_the_same_both_ways(owned: bool) -> None:
    """Strings sum to 7 bytes ("x-h" + "xx" + "ok"), lists to 1 element: the bounds are inclusive."""
    ty = _response_type()
    plan = _packed.plan(ty)
    assert plan is not None
    value = _response(headers=[record(name="x-h", value="xx")], body="ok")

    def lift(max_bytes: int, max_items: int) -> Any:
        c = _owned(ty, value)
        if owned:
            try:
                _adapter._check_size(c, max_bytes=max_bytes, max_items=max_items)
            except _packed.LiftTooLarge:
                ffi.wasmtime_component_val_delete(byref(c))
                raise
            return ty.convert_from_c(c)
        try:
            return _packed.lift(plan, c, max_bytes=max_bytes, max_items=max_items)
        finally:
            ffi.wasmtime_component_val_delete(byref(c))

    assert lift(7, 1).body == "ok"
    with pytest.raises(_packed.LiftTooLarge) as info:
        lift(6, 1)
    assert not info.value.items
    with pytest.raises(_packed.LiftTooLarge) as info:
        lift(7, 0)
    assert info.value.items


def test_types_outside_strings_scalars_records_and_lists_have_no_plan() -> None:
    engine = new_engine()
    component = Component(engine, (FIXTURES / "hostile.wasm").read_bytes())
    log_iface: Any = component.type.imports(engine)["extplane:extension/log@1.0.0"].ty
    emit: Any = log_iface.exports(engine)["emit"].ty
    # emit(level: enum, message: string): the enum takes wasmtime-py's path
    assert [_packed.plan(ty) is not None for _name, ty in emit.params] == [False, True]
    assert _packed.plan(_request_type()) is not None
    assert _packed.plan(_response_type()) is not None
