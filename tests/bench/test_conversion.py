"""bench.conversion: the variants it alternates really are wasmtime-py's and ours, and its rows are
each variant / upstream. No timing is asserted."""

from __future__ import annotations

from wasmtime import _ffi as ffi
from wasmtime.component import _types as wt_types

from bench.conversion import VARIANTS, summarize
from runner import _adapter


def test_the_upstream_switch_swaps_wasmtime_pys_own_conversions_in_and_back_out() -> None:
    _adapter.install()
    try:
        _adapter.use_upstream_conversions(True)
        assert ffi.str_to_capi is not _adapter._str_to_capi
        assert wt_types.RecordType.convert_to_c is not _adapter._record_to_c
        assert ffi.str_to_capi.__module__ == "wasmtime._ffi"
    finally:
        _adapter.use_upstream_conversions(False)
    assert ffi.str_to_capi is _adapter._str_to_capi
    assert wt_types.RecordType.convert_to_c is _adapter._record_to_c
    assert wt_types.String.convert_from_c is _adapter._string_from_c


def test_rows_are_each_variant_against_upstream() -> None:
    us = {"upstream": [100.0, 110.0, 120.0], "patched": [90.0, 99.0, 108.0], "packed": [80.0, 88.0, 96.0]}
    assert tuple(us) == VARIANTS
    rows = summarize(us)
    assert [r.figure for r in rows] == [
        "Runtime.run C echo, patched conversion (p50)",
        "Runtime.run C echo, patched conversion (mean)",
        "Runtime.run C echo, packed conversion (p50)",
        "Runtime.run C echo, packed conversion (mean)",
    ]
    assert [round(r.ratio or 0, 3) for r in rows] == [0.9, 0.9, 0.8, 0.8]
