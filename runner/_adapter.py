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
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from ctypes import byref
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Record, Variant
from wasmtime.component import _enter as wt_enter
from wasmtime.component import _linker as wt_linker
from wasmtime.component import _types as wt_types

__all__ = ["Record", "Variant", "err", "field", "install", "ok", "record"]

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


def install() -> None:
    """Apply the patches above to wasmtime-py (idempotent; the runner calls it before any Engine)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        if wasmtime.__name__ != "wasmtime" or not hasattr(wt_types.VariantLikeType, "_lower"):
            raise RuntimeError("wasmtime-py layout changed: re-check runner/_adapter.py patches")
        wt_types.VariantLikeType._lower = _lower  # type: ignore[method-assign]
        # func_impl looks `catch_exceptions` up in _linker's globals; enter_wasm looks up
        # `maybe_raise_last_exn` in _enter's globals: both at call time, so rebinding suffices.
        wt_linker.catch_exceptions = _catch_exceptions  # type: ignore[attr-defined]
        wt_enter.maybe_raise_last_exn = _maybe_raise_last_exn
        _installed = True
