"""The one place that knows how wasmtime-py 50 represents component values, and fixes its bugs.

Conversions (see TOOLCHAIN.md): records are attribute objects with the WIT (kebab-case) field names,
enums are `str`, `option<T>` is `None` or the value, variants are `Variant(tag, payload)`. Host
functions here always answer results explicitly tagged, `ok(value)` / `err(case, payload)`, so the
lowering never has to guess a case from Python classes.

Patches, applied once by `install()` (each has a regression test in tests/runner/test_adapter.py):

1. Thread-safe, explicitly tagged variant lowering. Upstream `VariantLikeType._lower` picks the case
   of an untagged variant by filling a module-global set (`case_test_cache`) whose filling makes ctypes
   calls that release the GIL: two executor threads corrupt each other's set ("value not valid for this
   variant"). It also cannot express `err` for one-case error variants such as `context-error { denied }`
   (a bare `denied` is lowered from `None`). The replacement uses a local set and, when given a
   `Variant` whose tag names one of the type's cases, takes that case directly.
2. Per-thread host exceptions. Upstream stores a host function's Python exception in a module global
   (`_enter.LAST_EXCEPTION`) until the caller re-raises it: two threads failing at once can swap
   exceptions. The replacement keeps it in a thread-local.
3. Memoized type trees. Upstream re-reads a type's structure through the C API on every access:
   `RecordType.fields` (and list elements, tuple elements, variant/option/result cases, "is this a
   tagged variant") build fresh Python type objects each time, and every conversion asks again for
   every value it converts. The profile (docs/performance.md) put ~18-20 % of the runner's CPU for a
   cheap guest in conversion, 5-6 % in `RecordType.fields` alone. Component types are immutable, so
   each type object now computes these once and keeps them; with the handler's signature cached per
   loaded component (`Signature`, below) one call converts through one long-lived tree.

4. One copy per string. Upstream `str_to_capi` / `bytes_to_capi` build a ctypes array copy of the
   bytes and then `memmove` it into the C vector, and `to_str` copies the C bytes into a bytearray
   before decoding: two copies and several ctypes objects for each string of every call (a request
   record lowers 14: its six values and eight field names). The replacements copy once, straight
   between the Python bytes and the C vector, through the same C API calls.

5. Leaner string and record conversion. `String` and `RecordType` convert with fewer ctypes objects
   per value: each record type keeps its field names encoded, a lifted record trusts the C API's
   field order instead of decoding and comparing every name, and a record that fails half-way
   through lowering frees what it lowered and nothing it did not (upstream leaves the names of the
   fields it never reached uninitialized before freeing them).

6. Packed parameters and results (in `call_bounded`, not a patch). A handler's request and response
   are made of strings, bools, integers, records and lists; runner._packed lays such a parameter
   out in one Python-owned buffer with `struct` (the C API only reads a call's arguments: no C
   allocation, nothing to free afterwards) and reads such a result with one `ctypes.string_at`
   per C array or string, bounded as below. Other types take wasmtime-py's path.

Patches 4 and 5 take 9-10 % off a C echo call's `Runtime.run`, patch 6 more (docs/performance.md,
"Packed conversion").

Not a patch but a replacement call: `call_bounded(func, store, *params, max_bytes=, max_items=,
signature=)` is `Func.__call__` that measures the result in its C form (what the C API lifted out of
guest memory) and refuses it, freeing it, before more than its bounds are copied into Python: from
lengths alone (`_check_size`, or runner._packed as it reads). A guest's memory cap does not
bound that size: 64 header records may all point at the same 1 MiB, and upstream then builds two
Python copies of every string and one object per list element (100,000 one-byte headers took 38 s of
GIL-holding conversion). What the C API itself lifts is bounded by wasmtime's hostcall fuel (128 MiB
by default, not settable through the C API that wasmtime-py 50 binds).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from ctypes import byref
from typing import Any

import wasmtime
from wasmtime import _bindings as wt_bindings
from wasmtime import _ffi as ffi
from wasmtime.component import Func, Record, Variant
from wasmtime.component import _enter as wt_enter
from wasmtime.component import _linker as wt_linker
from wasmtime.component import _types as wt_types

from runner import _packed
from runner._packed import LiftTooLarge

__all__ = [
    "LiftTooLarge",
    "Record",
    "Signature",
    "Variant",
    "call_bounded",
    "err",
    "field",
    "install",
    "ok",
    "record",
]

_installed = False
_install_lock = threading.Lock()
_tls = threading.local()


def record(**fields: Any) -> Record:
    """A component record; `tenant_id=` becomes the WIT field `tenant-id`."""
    rec = Record()
    for name, value in fields.items():
        setattr(rec, name.replace("_", "-"), value)
    return rec


def field(rec: Any, name: str) -> Any:
    """Read a record field by its Python name (`body_base64` reads `body-base64`)."""
    return getattr(rec, name.replace("_", "-"))


def ok(value: Any = None) -> Variant:
    return Variant("ok", value)


def err(case: str, payload: Any = None) -> Variant:
    """`err(case(payload))` of a `result<_, some-error>` whose error is a variant."""
    return Variant("err", Variant(case, payload))


def _lower(
    self: wt_types.VariantLikeType, store: Any, val: Any
) -> tuple[str, ctypes._Pointer[ffi.wasmtime_component_val_t] | None]:
    cases = self._cases()
    chosen: tuple[str, wt_types.ValType | None] | None = None
    payload = val
    if isinstance(val, Variant):
        for name, ty in cases:
            if name == val.tag:
                chosen, payload = (name, ty), val.payload
                break
    if chosen is None:
        if self._tagged():
            raise TypeError(f"expected a Variant with one of the tags {[n for n, _ in cases]}")
        for name, ty in cases:
            if ty is None:
                if val is None:
                    chosen = (name, ty)
                    break
                continue
            classes: set[type] = set()  # local: the upstream global set races across threads
            ty.add_classes(classes)
            if isinstance(val, tuple(classes)):
                chosen = (name, ty)
                break
    if chosen is None:
        raise ValueError("value not valid for this variant")
    name, ty = chosen
    if ty is None:
        return (name, None)
    raw = ffi.wasmtime_component_val_t()
    ty.convert_to_c(store, payload, ctypes.pointer(raw))
    return (name, ffi.wasmtime_component_val_new(byref(raw)))


_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
_FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value


def _check_size(root: ffi.wasmtime_component_val_t, *, max_bytes: int, max_items: int) -> None:
    """Walk a lifted C value; raise LiftTooLarge as soon as its string bytes or list elements (each
    summed over the whole value) pass the bounds. Only reads lengths: a list over the bound is refused
    from its length, never walked."""
    strings = items = 0
    pending = [root]
    while pending:
        val = pending.pop()
        kind = val.kind
        if kind == _STRING:
            strings += val.of.string.size
            if strings > max_bytes:
                raise LiftTooLarge(f"strings of more than {max_bytes} bytes", items=False)
        elif kind == _LIST or kind == _TUPLE:
            seq = val.of.list if kind == _LIST else val.of.tuple
            items += seq.size
            if items > max_items:
                raise LiftTooLarge(f"lists of more than {max_items} elements", items=True)
            pending.extend(seq.data[i] for i in range(seq.size))
        elif kind == _RECORD:
            rec = val.of.record
            pending.extend(rec.data[i].val for i in range(rec.size))
        elif kind == _VARIANT:
            if val.of.variant.val:
                pending.append(val.of.variant.val.contents)
        elif kind == _OPTION:
            if val.of.option:
                pending.append(val.of.option.contents)
        elif kind == _RESULT:
            if val.of.result.val:
                pending.append(val.of.result.val.contents)
        elif kind == _ENUM:
            strings += val.of.enumeration.size
        elif kind == _FLAGS:
            items += val.of.flags.size
            if items > max_items:
                raise LiftTooLarge(f"lists of more than {max_items} elements", items=True)
        # Scalars (and resources, which our world does not return) carry no guest-sized data.


class Signature:
    """A component function's parameter and result types, read once and then reused across Stores
    and threads (component types are immutable and owned by these Python objects, not by a Store),
    and their runner._packed plans."""

    __slots__ = ("_lock", "_params", "_result", "_types", "_use_plans")

    def __init__(self) -> None:
        self._types: tuple[list[tuple[str, wt_types.ValType]], wt_types.ValType | None] | None = None
        self._params: list[_packed.Plan] | None = None  # None: some parameter is not planned
        self._result: _packed.Plan | None = None
        self._use_plans = True
        self._lock = threading.Lock()

    def of(self, func: Func, store: wasmtime.Store) -> tuple[list[tuple[str, Any]], Any]:
        types = self._types
        if types is None:
            with self._lock:
                if self._types is None:
                    fty = func.type(store)
                    params = [_packed.plan(ty) for _name, ty in fty.params]
                    self._params = None if None in params else params  # type: ignore[assignment]
                    result = fty.result
                    self._result = _packed.plan(result) if result is not None else None
                    self._types = (fty.params, result)
                types = self._types
        return types

    def packed(self) -> tuple[list[_packed.Plan] | None, _packed.Plan | None]:
        """(after `of`) The plans of the parameters (None unless every one has a plan) and of the
        result (None without one): what `call_bounded` packs and reads itself (patch 6)."""
        if not self._use_plans:
            return None, None
        return self._params, self._result

    def force_owned(self, owned: bool) -> None:
        """Convert through wasmtime-py (True) or through the plans where there are some (False).
        Only for bench/conversion.py."""
        self._use_plans = not owned


def call_bounded(
    func: Func,
    store: wasmtime.Store,
    *params: Any,
    max_bytes: int,
    max_items: int,
    signature: Signature | None = None,
) -> Any:
    """Call a component function like `Func.__call__`, refusing an oversized result before lifting it
    into Python (raises LiftTooLarge; the C value is freed either way). `signature`: the function's
    cached types (the same export of the same component), else they are read from `func`."""
    sig = signature or Signature()
    param_tys, result_ty = sig.of(func, store)
    if len(params) != len(param_tys):
        raise TypeError(f"wrong number of parameters: given {len(params)}, expected {len(param_tys)}")
    param_plans, result_plan = sig.packed()
    packed: _packed.Lowered | None = None  # alive until we return: the C side reads its buffer
    owned = 0  # how many parameters wasmtime-py lowered into C-owned memory (freed at the end)
    if param_plans is not None:
        packed = _packed.lower(param_plans, params)
        param_capi: Any = packed.vals
    else:
        param_capi = (ffi.wasmtime_component_val_t * max(len(params), 1))()
    try:
        if packed is None:
            for (_name, ty), val in zip(param_tys, params, strict=True):
                ty.convert_to_c(store, val, ctypes.pointer(param_capi[owned]))
                owned += 1
        result = ffi.wasmtime_component_val_t()

        def run() -> ctypes._Pointer[ffi.wasmtime_error_t]:
            return ffi.wasmtime_component_func_call(
                byref(func._func),
                store._context(),
                param_capi,
                len(params),
                byref(result) if result_ty is not None else None,
                1 if result_ty is not None else 0,
            )

        wt_enter.enter_wasm(run)
        if result_ty is None:
            return None
        if result_plan is not None:
            try:
                return _packed.lift(result_plan, result, max_bytes=max_bytes, max_items=max_items)
            finally:
                ffi.wasmtime_component_val_delete(byref(result))
        try:
            _check_size(result, max_bytes=max_bytes, max_items=max_items)
        except LiftTooLarge:
            ffi.wasmtime_component_val_delete(byref(result))
            raise
        return result_ty.convert_from_c(result)
    finally:
        for i in range(owned):  # packed ones are Python's: freeing them through the C API would corrupt it
            ffi.wasmtime_component_val_delete(byref(param_capi[i]))


def _catch_exceptions(store_raw: Any, func: Callable[[wasmtime.StoreContext], None]) -> Any:
    store = wasmtime.StoreContext(store_raw)
    exception: wasmtime.WasmtimeError | None = None
    try:
        func(store)
    except wasmtime.WasmtimeError as exc:
        exception = exc
    except Exception as exc:
        _tls.last_exception = exc
        exception = wasmtime.WasmtimeError("python exception")
    finally:
        store._invalidate()
    if exception is not None:
        return ctypes.cast(exception._consume(), ctypes.c_void_p).value
    return 0


def _maybe_raise_last_exn() -> None:
    exc = getattr(_tls, "last_exception", None)
    if exc is None:
        return
    _tls.last_exception = None
    raise exc


_new_uninitialized = wt_bindings._wasm_byte_vec_new_uninitialized  # the raw C function, no wrapper
_upstream_bytes_to_capi = ffi.bytes_to_capi


# Parameters named as upstream's (`s`): callers may pass them by keyword.
def _bytes_to_capi(s: bytes | bytearray) -> ffi.wasm_byte_vec_t:
    if not isinstance(s, bytes):
        return _upstream_bytes_to_capi(s)  # a bytearray (or a wrong type: upstream raises)
    vec = ffi.wasm_byte_vec_t()
    _new_uninitialized(byref(vec), len(s))
    if s:
        ctypes.memmove(vec.data, s, len(s))
    return vec


def _str_to_capi(s: str) -> ffi.wasm_byte_vec_t:
    if not isinstance(s, str):
        raise TypeError("expected a string")
    return _bytes_to_capi(s.encode("utf-8"))


def _to_str(vec: ffi.wasm_byte_vec_t) -> str:
    size = vec.size
    return ctypes.string_at(vec.data, size).decode("utf-8") if size else ""


_STRING_KIND = ffi.WASMTIME_COMPONENT_STRING
_RECORD_KIND = ffi.WASMTIME_COMPONENT_RECORD
_BOOL_KIND = ffi.WASMTIME_COMPONENT_BOOL
_valrecord_new_uninit = wt_bindings._wasmtime_component_valrecord_new_uninit
_valrecord_delete = wt_bindings._wasmtime_component_valrecord_delete
_byte_vec_delete = wt_bindings._wasm_byte_vec_delete


def _string_to_c(self: wt_types.String, store: Any, val: Any, ptr: Any) -> None:  # noqa: ARG001 - upstream signature
    if not isinstance(val, str):
        raise TypeError("expected string type")
    c = ptr.contents
    c.kind = _STRING_KIND
    c.of.string = _str_to_capi(val)


def _string_from_c(self: wt_types.String, c: Any) -> str:  # noqa: ARG001 - upstream signature
    string = c.of.string
    text = _to_str(string)
    _byte_vec_delete(byref(string))
    return text


# Per record type, each field: (name, its UTF-8 bytes, its type).
_RecordField = tuple[str, bytes, wt_types.ValType]


def _record_names(self: wt_types.RecordType) -> list[_RecordField]:
    names: list[_RecordField] | None = self.__dict__.get("_extplane_names")
    if names is None:
        names = []
        for name, ty in self.fields:
            names.append((name, name.encode(), ty))
        self.__dict__["_extplane_names"] = names
    return names


def _record_to_c(self: wt_types.RecordType, store: Any, val: Any, ptr: Any) -> None:
    fields = _record_names(self)
    raw = ffi.wasmtime_component_valrecord_t()
    _valrecord_new_uninit(byref(raw), len(fields))
    data = raw.data
    done = 0
    try:
        for name, encoded, ty in fields:
            entry = data[done]
            ty.convert_to_c(store, getattr(val, name), ctypes.pointer(entry.val))
            entry.name = _bytes_to_capi(encoded)
            done += 1
    except BaseException:
        for j in range(done, len(fields)):  # not lowered yet: make them safe to free
            data[j].val.kind = _BOOL_KIND
            data[j].val.of.boolean = False
            data[j].name = ffi.wasm_byte_vec_t()
        _valrecord_delete(byref(raw))
        raise
    c = ptr.contents
    c.kind = _RECORD_KIND
    c.of.record = raw


def _record_from_c(self: wt_types.RecordType, c: Any) -> Record:
    rec = c.of.record
    try:
        out = Record()
        data = rec.data
        for i, (name, _encoded, ty) in zip(range(rec.size), _record_names(self), strict=True):
            entry = data[i]
            value = entry.val
            setattr(out, name, ty.convert_from_c(value))
            value.kind = _BOOL_KIND  # converted (and freed) above: the record delete must skip it
            value.of.boolean = False
        return out
    finally:
        _valrecord_delete(byref(rec))


def _memoized(getter: Callable[[Any], Any], key: str) -> Callable[[Any], Any]:
    """`getter`, computed once per type object and kept in its __dict__ (a race computes it twice,
    harmlessly: both results describe the same immutable type)."""

    def get(self: Any) -> Any:
        cached = self.__dict__.get(key, _MISSING)
        if cached is _MISSING:
            cached = self.__dict__[key] = getter(self)
        return cached

    return get


_MISSING = object()
# (class, attribute, is a property): the structure readers that conversions call for every value.
_MEMOIZED: tuple[tuple[type, str, bool], ...] = (
    (wt_types.RecordType, "fields", True),
    (wt_types.ListType, "element", True),
    (wt_types.ListType, "_is_bytes", False),
    (wt_types.TupleType, "elements", True),
    (wt_types.VariantType, "cases", True),
    (wt_types.OptionType, "payload", True),
    (wt_types.ResultType, "ok", True),
    (wt_types.ResultType, "err", True),
    (wt_types.VariantType, "_cases", False),
    (wt_types.OptionType, "_cases", False),
    (wt_types.ResultType, "_cases", False),
    (wt_types.VariantLikeType, "_tagged", False),
)


def _memoize_types() -> None:
    for cls, name, is_property in _MEMOIZED:
        current = cls.__dict__[name]
        getter = current.fget if is_property else current
        if getter is None:
            raise RuntimeError(f"wasmtime-py layout changed: {cls.__name__}.{name} has no getter")
        memo = _memoized(getter, f"_extplane_{name}")
        setattr(cls, name, property(memo) if is_property else memo)


# Patches 4 and 5 as (owner, attribute, replacement). Every call site reads these as attributes of
# wasmtime._ffi or of the type classes at call time, so rebinding them suffices.
_PATCHED_CONVERSIONS: list[tuple[Any, str, Any]] = [
    (ffi, "bytes_to_capi", _bytes_to_capi),
    (ffi, "str_to_capi", _str_to_capi),
    (ffi, "to_str", _to_str),
    (wt_types.String, "convert_to_c", _string_to_c),
    (wt_types.String, "convert_from_c", _string_from_c),
    (wt_types.RecordType, "convert_to_c", _record_to_c),
    (wt_types.RecordType, "convert_from_c", _record_from_c),
]
_UPSTREAM_CONVERSIONS: list[tuple[Any, str, Any]] = []  # what install() replaced


def _conversions() -> list[tuple[Any, str, Any]]:
    return [(owner, name, getattr(owner, name)) for owner, name, _new in _PATCHED_CONVERSIONS]


def _set_conversions(conversions: list[tuple[Any, str, Any]]) -> None:
    for owner, name, fn in conversions:
        setattr(owner, name, fn)


def use_upstream_conversions(upstream: bool) -> None:
    """Swap wasmtime-py's own string and record conversions back in (True) or patches 4 and 5 (False),
    process-wide. Only for bench/conversion.py, which alternates them call by call; after install()."""
    if not _installed:
        raise RuntimeError("install() first")
    _set_conversions(_UPSTREAM_CONVERSIONS if upstream else _PATCHED_CONVERSIONS)


def install() -> None:
    """Apply the patches above to wasmtime-py (idempotent; the runner calls it before any Engine)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        if wasmtime.__name__ != "wasmtime" or not hasattr(wt_types.VariantLikeType, "_lower"):
            raise RuntimeError("wasmtime-py layout changed: re-check runner/_adapter.py patches")
        wt_types.VariantLikeType._lower = _lower  # type: ignore[method-assign]
        _memoize_types()
        _UPSTREAM_CONVERSIONS.extend(_conversions())
        _set_conversions(_PATCHED_CONVERSIONS)
        # func_impl looks `catch_exceptions` up in _linker's globals; enter_wasm looks up
        # `maybe_raise_last_exn` in _enter's globals: both at call time, so rebinding suffices.
        wt_linker.catch_exceptions = _catch_exceptions  # type: ignore[attr-defined]
        wt_enter.maybe_raise_last_exn = _maybe_raise_last_exn
        _installed = True
