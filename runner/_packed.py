"""Component values packed with `struct` into, and read with `struct` out of, the C API's layout.

Why: for a cheap guest, converting the handler's request and response was the largest slice of a
call left in Python (docs/performance.md, "Packed conversion"). wasmtime-py builds one ctypes object
per C struct and per field access; a request with one header cost ~27 µs to lower and its response
~23 µs to bound-check and lift on this machine. Here a value's whole C form is a handful of
`struct.pack_into` calls into one bytearray, and a lifted result is read with one `ctypes.string_at`
per C array or string.

Lowering (`lower`): every `wasmtime_component_val_t` of the parameters, the arrays their records and
lists point to and the bytes of their strings are laid out in one bytearray that Python owns. The C
API only reads a call's arguments (`wasmtime_component_func_call` takes them `const` and converts them
into its own values), so nothing is allocated on the C side and nothing is freed afterwards. Pointers
inside the buffer are written once its address is fixed, after its last resize. Arrays are 8-byte
aligned, as the C structs (and Rust's slices over them) require.

Lifting (`lift`): reads what the C API lifted out of guest memory, refusing it with LiftTooLarge as
soon as its strings or list elements (each summed over the whole value) pass the caller's bounds:
from a list's or a string's length, before reading its elements or bytes, so nothing past the bounds
is ever copied into Python. The caller frees the C value once, whatever happened here.

Only strings, bools, integers, records and lists other than `list<u8>` are planned (`plan` answers
None for any other type): the extplane world's request and response are made of these. Anything else
takes wasmtime-py's own conversion (runner._adapter). Layout constants come from wasmtime-py's ctypes
definitions and are checked at import.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Protocol

from wasmtime import _bindings as wt_bindings
from wasmtime import _ffi as ffi
from wasmtime.component import Record
from wasmtime.component import _types as wt_types

__all__ = ["Bounds", "LiftTooLarge", "Lowered", "Plan", "lift", "lower", "plan"]


def _offset(struct_type: type, field: str) -> int:
    return int(getattr(struct_type, field).offset)  # ctypes' field descriptors (typeshed lacks them)


_VAL = ffi.wasmtime_component_val_t
_ENTRY = wt_bindings.wasmtime_component_valrecord_entry_t
VAL_SIZE = ctypes.sizeof(_VAL)
ENTRY_SIZE = ctypes.sizeof(_ENTRY)
_OF = _offset(_VAL, "of")  # the union after the kind byte
_ENTRY_VAL = _offset(_ENTRY, "val")  # an entry's value after its name
if (VAL_SIZE, _OF, ENTRY_SIZE, _ENTRY_VAL, ctypes.sizeof(ffi.wasm_byte_vec_t)) != (32, 8, 48, 16, 16):
    raise RuntimeError("wasmtime-py's component value layout changed: re-check runner/_packed.py")
if (_offset(ffi.wasm_byte_vec_t, "data"), _offset(wt_bindings.wasmtime_component_vallist_t, "data")) != (
    8,
    8,
):
    raise RuntimeError("wasmtime-py's component value layout changed: re-check runner/_packed.py")

_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
# A value whose payload is a vector (string, list, record): kind, then the union's size and data.
_VEC = struct.Struct("<B7xQQ")
_PTR = struct.Struct("<Q")
_NAME = struct.Struct("<QQ")
_string_at = ctypes.string_at


class LiftTooLarge(Exception):
    """A component value's strings or lists exceed the bounds given to `call_bounded`.

    `items` tells which: True when its list elements passed `max_items`, False for string bytes.
    """

    def __init__(self, message: str, *, items: bool) -> None:
        super().__init__(message)
        self.items = items


class Bounds:
    """What a lift may still read: string bytes and list elements, each summed over the value."""

    __slots__ = ("items", "max_bytes", "max_items", "strings")

    def __init__(self, *, max_bytes: int, max_items: int) -> None:
        self.max_bytes, self.max_items = max_bytes, max_items
        self.strings = self.items = 0

    def take_bytes(self, n: int) -> None:
        self.strings += n
        if self.strings > self.max_bytes:
            raise LiftTooLarge(f"strings of more than {self.max_bytes} bytes", items=False)

    def take_items(self, n: int) -> None:
        self.items += n
        if self.items > self.max_items:
            raise LiftTooLarge(f"lists of more than {self.max_items} elements", items=True)


# Where a pointer goes (an offset in the buffer) and what it points to (another offset).
Fixups = list[tuple[int, int]]


class Plan(Protocol):
    """How values of one component type are packed and read."""

    def pack(self, val: Any, out: bytearray, at: int, fix: Fixups) -> None:
        """Write `val` as the wasmtime_component_val_t at `out[at:at+32]`, appending what it points to."""

    def read(self, block: bytes, at: int, bounds: Bounds) -> Any:
        """The value of the wasmtime_component_val_t at `block[at:at+32]`, as wasmtime-py lifts it."""


def _kind_of(block: bytes, at: int, kind: int) -> None:
    if block[at] != kind:  # the C API lifted the function's own result type: never seen so far
        raise TypeError(f"lifted value of kind {block[at]} where kind {kind} was expected")


def _grow(out: bytearray, size: int) -> int:
    """Append `size` zero bytes at the next 8-byte boundary; returns where they start."""
    start = len(out) + (-len(out) % 8)
    out.extend(bytes(start - len(out) + size))
    return start


class _String:
    def pack(self, val: Any, out: bytearray, at: int, fix: Fixups) -> None:
        if not isinstance(val, str):
            raise TypeError("expected string type")
        data = val.encode("utf-8")
        start = len(out)
        out += data
        _VEC.pack_into(out, at, _STRING, len(data), 0)
        fix.append((at + 16, start))

    def read(self, block: bytes, at: int, bounds: Bounds) -> Any:
        _kind_of(block, at, _STRING)
        size, data = _NAME.unpack_from(block, at + _OF)
        bounds.take_bytes(size)
        return _string_at(data, size).decode("utf-8") if size else ""


class _Scalar:
    """bool and the integers: a kind byte and one fixed-size field of the union."""

    def __init__(self, kind: int, code: str, python: type) -> None:
        self._kind = kind
        self._struct = struct.Struct(f"<B7x{code}")
        self._python = python
        self._name = python.__name__

    def pack(self, val: Any, out: bytearray, at: int, fix: Fixups) -> None:  # noqa: ARG002 - Plan
        if not isinstance(val, self._python):
            raise TypeError(f"expected {self._name} type")
        try:
            self._struct.pack_into(out, at, self._kind, val)
        except struct.error:
            raise TypeError(f"{val!r} is out of range for this integer type") from None

    def read(self, block: bytes, at: int, bounds: Bounds) -> Any:  # noqa: ARG002 - Plan
        _kind_of(block, at, self._kind)
        return self._struct.unpack_from(block, at)[1]


class _Record:
    def __init__(self, fields: list[tuple[str, Plan]]) -> None:
        self._fields = fields
        self._names = [name for name, _plan in fields]
        self._plans = [p for _name, p in fields]
        # Each field's name as the C vector (size, pointer) an entry holds: it points into these
        # bytes, which live as long as the plan (so as long as the component's Signature).
        self._encoded = [name.encode() for name in self._names]
        self._name_vecs = [
            _NAME.pack(len(e), ctypes.cast(e, ctypes.c_void_p).value or 0)  # type: ignore[arg-type]
            for e in self._encoded
        ]
        self._packing = [
            (name, None if isinstance(p, _String) else p, vec)
            for (name, p), vec in zip(fields, self._name_vecs, strict=True)
        ]

    def pack(self, val: Any, out: bytearray, at: int, fix: Fixups) -> None:
        n = len(self._fields)
        start = _grow(out, n * ENTRY_SIZE)
        _VEC.pack_into(out, at, _RECORD, n, 0)
        fix.append((at + 16, start))
        entry = start
        for name, p, name_vec in self._packing:
            out[entry : entry + 16] = name_vec
            field = getattr(val, name)
            if p is None:  # a string, inlined: most fields of the world's records are strings
                if not isinstance(field, str):
                    raise TypeError("expected string type")
                data = field.encode("utf-8")
                _VEC.pack_into(out, entry + _ENTRY_VAL, _STRING, len(data), 0)
                fix.append((entry + _ENTRY_VAL + 16, len(out)))
                out += data
            else:
                p.pack(field, out, entry + _ENTRY_VAL, fix)
            entry += ENTRY_SIZE

    def read(self, block: bytes, at: int, bounds: Bounds) -> Any:
        _kind_of(block, at, _RECORD)
        n, data = _NAME.unpack_from(block, at + _OF)
        if n != len(self._plans):
            raise TypeError(f"lifted record has {n} fields, its type {len(self._plans)}")
        entries = _string_at(data, n * ENTRY_SIZE)
        out = Record()
        values = out.__dict__
        at = _ENTRY_VAL
        # The C API lifts a record's fields in its type's order (as runner._adapter patch 5 relies on).
        for name, p in zip(self._names, self._plans, strict=True):
            values[name] = p.read(entries, at, bounds)
            at += ENTRY_SIZE
        return out


class _List:
    def __init__(self, element: Plan) -> None:
        self._element = element

    def pack(self, val: Any, out: bytearray, at: int, fix: Fixups) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        n = len(val)
        start = _grow(out, n * VAL_SIZE)
        _VEC.pack_into(out, at, _LIST, n, 0)
        fix.append((at + 16, start))
        element = self._element
        for item in val:
            element.pack(item, out, start, fix)
            start += VAL_SIZE

    def read(self, block: bytes, at: int, bounds: Bounds) -> Any:
        _kind_of(block, at, _LIST)
        n, data = _NAME.unpack_from(block, at + _OF)
        bounds.take_items(n)
        if not n:
            return []
        items = _string_at(data, n * VAL_SIZE)
        read = self._element.read
        return [read(items, i * VAL_SIZE, bounds) for i in range(n)]


_SCALARS: dict[type, tuple[int, str, type]] = {
    wt_types.Bool: (ffi.WASMTIME_COMPONENT_BOOL.value, "?", bool),
    wt_types.S8: (ffi.WASMTIME_COMPONENT_S8.value, "b", int),
    wt_types.U8: (ffi.WASMTIME_COMPONENT_U8.value, "B", int),
    wt_types.S16: (ffi.WASMTIME_COMPONENT_S16.value, "h", int),
    wt_types.U16: (ffi.WASMTIME_COMPONENT_U16.value, "H", int),
    wt_types.S32: (ffi.WASMTIME_COMPONENT_S32.value, "i", int),
    wt_types.U32: (ffi.WASMTIME_COMPONENT_U32.value, "I", int),
    wt_types.S64: (ffi.WASMTIME_COMPONENT_S64.value, "q", int),
    wt_types.U64: (ffi.WASMTIME_COMPONENT_U64.value, "Q", int),
}


def plan(ty: wt_types.ValType) -> Plan | None:
    """The plan for values of `ty`, or None when it holds a type this module does not pack."""
    if isinstance(ty, wt_types.String):
        return _String()
    scalar = _SCALARS.get(type(ty))
    if scalar is not None:
        return _Scalar(*scalar)
    if isinstance(ty, wt_types.RecordType):
        fields: list[tuple[str, Plan]] = []
        for name, field_ty in ty.fields:
            field_plan = plan(field_ty)
            if field_plan is None:
                return None
            fields.append((name, field_plan))
        return _Record(fields)
    if isinstance(ty, wt_types.ListType) and not ty._is_bytes():
        element = plan(ty.element)
        return _List(element) if element is not None else None
    return None


class Lowered:
    """Packed parameters: `vals` points at the first of them. Keep this object alive until the call
    returns: the C side reads the buffer it owns."""

    __slots__ = ("_buffer", "vals")

    def __init__(self, buffer: bytearray, vals: ctypes.Array[Any]) -> None:
        self._buffer = buffer
        self.vals = vals


def lower(plans: list[Plan], values: tuple[Any, ...]) -> Lowered:
    """Pack `values` (one per plan) as consecutive wasmtime_component_val_t's. Raises TypeError, as
    wasmtime-py does, for a value that does not match its type."""
    out = bytearray(VAL_SIZE * len(plans))
    fix: Fixups = []
    at = 0
    for p, value in zip(plans, values, strict=True):
        p.pack(value, out, at, fix)
        at += VAL_SIZE
    vals = (_VAL * len(plans)).from_buffer(out)  # from here on `out` cannot be resized (or moved)
    base = ctypes.addressof(vals)
    if base % 8:  # bytearray storage comes from malloc (16-aligned); never seen otherwise
        raise RuntimeError("bytearray storage is not 8-byte aligned")
    pack_ptr = _PTR.pack_into
    for where, target in fix:
        pack_ptr(out, where, base + target)
    return Lowered(out, vals)


def lift(p: Plan, result: Any, *, max_bytes: int, max_items: int) -> Any:
    """Read the lifted C value `result` (a wasmtime_component_val_t) within the bounds; raises
    LiftTooLarge past them. Frees nothing: the caller deletes `result`."""
    block = _string_at(ctypes.addressof(result), VAL_SIZE)
    return p.read(block, 0, Bounds(max_bytes=max_bytes, max_items=max_items))
