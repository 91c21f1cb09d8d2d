"""Service-free units of the store budget, the engine's feature set and the bounded response lift."""

from __future__ import annotations

import time
from typing import Any

import pytest
import wasmtime
from wasmtime.component import Component, Linker

from core.settings import RunnerSettings
from runner import _adapter
from runner._adapter import LiftTooLarge, Signature, call_bounded, record
from runner._limits import MAX_MEMORIES, MAX_TABLES, store_budget
from runner.compile import new_engine
from runner.errors import DeadlineExceeded, ResponseTooLarge
from tests.runner.wat_guests import ALIAS_HEADERS

MiB = 1024 * 1024


@pytest.mark.parametrize("cap_mb", [1, 2, 4, 8, 13, 14, 16, 48, 64, 256, 4096])
def test_store_budget_is_a_total_under_the_cap(cap_mb: int) -> None:
    budget = store_budget(cap_mb * MiB)
    assert budget.total <= cap_mb * MiB
    assert budget.memory_size * MAX_MEMORIES >= cap_mb * MiB * 15 // 16  # tables take 1/16 at most
    if cap_mb >= 14:  # a componentize-py guest needs 12.6 MiB of memory and 5,682 slots in one table
        assert budget.memory_size >= 12.625 * MiB and budget.table_elements >= 5682
    assert MAX_TABLES * budget.table_elements * 8 <= cap_mb * MiB // 16


@pytest.mark.parametrize(
    "wat",
    [
        "(module (type $a (array (mut i8))) (func (result (ref $a)) (array.new_default $a (i32.const 9))))",
        "(module (tag $t) (func (throw $t)))",
    ],
    ids=["gc", "exceptions"],
)
def test_engine_refuses_features_whose_heap_escapes_the_limiter(wat: str) -> None:
    with pytest.raises(wasmtime.WasmtimeError):
        wasmtime.Module(new_engine(), wat)


class _Guest:
    def __init__(self) -> None:
        _adapter.install()
        self.engine = new_engine()
        self.component = Component(self.engine, ALIAS_HEADERS)

    def handler(self) -> tuple[wasmtime.Store, Any]:
        """A fresh Store and the guest's `handler` in it."""
        store = wasmtime.Store(self.engine)
        store.set_fuel(10**9)
        store.set_epoch_deadline(10**6)
        instance = Linker(self.engine).instantiate(store, self.component)
        func = instance.get_func(store, "handler")
        assert func is not None
        return store, func

    def call(self, mode: str, signature: Signature | None = None, **bounds: int) -> Any:
        store, func = self.handler()
        request = record(method="GET", path="/", query=mode, headers=[], body="", body_base64=False)
        return call_bounded(func, store, request, signature=signature, **bounds)


def test_call_bounded_refuses_from_lengths_and_lifts_what_fits() -> None:
    guest = _Guest()
    with pytest.raises(LiftTooLarge) as info:
        guest.call("a", max_bytes=MiB, max_items=256)  # 64 MiB of aliased strings
    assert not info.value.items
    with pytest.raises(LiftTooLarge) as info:
        guest.call("n", max_bytes=MiB, max_items=256)  # 100,000 header records
    assert info.value.items
    small = guest.call("o", max_bytes=MiB, max_items=256)
    assert (small.status, small.body, [(h.name, h.value) for h in small.headers]) == (
        200,
        "ok",
        [("x-h", "xx")],
    )
    with pytest.raises(LiftTooLarge):  # the bound counts every string: "x-h" + "xx" + "ok" is 7 bytes
        guest.call("o", max_bytes=6, max_items=256)


def test_response_is_checked_against_the_cap_and_the_deadline() -> None:
    from runner._engine import Runtime

    runtime = Runtime(RunnerSettings(env="test", max_response_bytes=10))
    try:
        header = record(name="x-a", value="12345")
        fits = record(status=201, headers=[header], body="ab", body_base64=False)
        assert runtime._response(fits, time.monotonic() + 60) == (201, [("x-a", "12345")], b"ab")
        over = record(status=200, headers=[header], body="abc", body_base64=False)  # 8 + 3 bytes
        with pytest.raises(ResponseTooLarge):
            runtime._response(over, time.monotonic() + 60)
        with pytest.raises(DeadlineExceeded):
            runtime._response(fits, time.monotonic() - 0.001)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("wat", "error", "says"),
    [
        ("(core module $m (table 100000 funcref)) (core instance (instantiate $m))", "MemoryExhausted", ""),
        (
            "(core module $m (table 1 funcref))" + " (core instance (instantiate $m))" * 9,
            "ModuleRejected",
            "tables",
        ),
        ("(core module $m)" + " (core instance (instantiate $m))" * 65, "ModuleRejected", "core instances"),
    ],
    ids=["initial-table-over-budget", "nine-tables", "65-instances"],
)
def test_limiter_refusals_at_instantiation_are_classified(wat: str, error: str, says: str) -> None:
    from runner._traps import classify

    engine = new_engine()
    store = wasmtime.Store(engine)
    store.set_fuel(10**6)
    store.set_epoch_deadline(10)
    store_budget(MiB).apply(store)
    with pytest.raises(wasmtime.WasmtimeError) as info:
        Linker(engine).instantiate(store, Component(engine, f"(component {wat})"))
    classified = classify(info.value)
    assert type(classified).__name__ == error and says in classified.message


def test_type_trees_are_read_once_and_reused_across_stores() -> None:
    """wasmtime-py re-reads a record's fields through the C API on every access (18-20 % of the
    runner's CPU for a cheap guest, docs/performance.md); after install() a type object answers from
    what it read first, and a Signature keeps one tree for every Store of a component."""
    guest = _Guest()
    signature = Signature()
    first = guest.call("o", signature, max_bytes=MiB, max_items=256)
    params, result = signature.of(None, None)  # type: ignore[arg-type]  # cached: func/store unused
    assert [name for name, _ty in params] == ["req"]
    request_ty = params[0][1]
    assert request_ty.fields is request_ty.fields  # one read, one list
    headers_ty = dict(request_ty.fields)["headers"]
    assert headers_ty.element is headers_ty.element
    assert result is not None and result.fields is result.fields
    again = guest.call("o", signature, max_bytes=MiB, max_items=256)  # a second Store, same tree
    assert signature.of(None, None)[1] is result  # type: ignore[arg-type]
    for response in (first, again):
        assert (response.status, response.body, [(h.name, h.value) for h in response.headers]) == (
            200,
            "ok",
            [("x-h", "xx")],
        )


@pytest.mark.parametrize("text", ["", "a", "héllo wörld ✓", "x" * 70_000, "nul\x00inside"])
def test_strings_cross_the_c_api_with_one_copy_and_unchanged(text: str) -> None:
    """install() swaps wasmtime-py's string <-> C vector copies for one-copy ones (patch 4): every
    string still arrives byte for byte, empty and non-ASCII ones included."""
    from wasmtime import _ffi as ffi

    _adapter.install()
    assert ffi.str_to_capi is _adapter._str_to_capi and ffi.to_str is _adapter._to_str
    vec = ffi.str_to_capi(text)
    try:
        assert vec.size == len(text.encode())
        assert ffi.to_str(vec) == text
        assert bytes(ffi.to_bytes(vec)) == text.encode()
    finally:
        ffi.wasm_byte_vec_delete(vec)
    for data in (text.encode(), bytearray(text.encode())):
        raw = ffi.bytes_to_capi(data)
        try:
            assert bytes(ffi.to_bytes(raw)) == bytes(data)
        finally:
            ffi.wasm_byte_vec_delete(raw)
    with pytest.raises(TypeError):
        ffi.str_to_capi(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ffi.bytes_to_capi("text")  # type: ignore[arg-type]


def test_a_record_that_fails_half_way_through_lowering_frees_cleanly() -> None:
    """Patch 5: a field of the wrong type stops the lowering with a TypeError; what was lowered is
    freed, nothing uninitialized is, and the next call converts as before."""
    guest = _Guest()
    store, func = guest.handler()
    for bad in ({"query": 7}, {"headers": [record(name="x", value=3)]}, {"body_base64": "no"}):
        fields = {"method": "GET", "path": "/", "query": "o", "headers": [], "body": "", "body_base64": False}
        request = record(**{**fields, **bad})
        with pytest.raises(TypeError):
            call_bounded(func, store, request, max_bytes=MiB, max_items=256)
    ok = guest.call("o", max_bytes=MiB, max_items=256)
    assert (ok.status, ok.body, [(h.name, h.value) for h in ok.headers]) == (200, "ok", [("x-h", "xx")])
