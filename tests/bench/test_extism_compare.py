"""bench.extism_compare: the WAT echo plugin is a valid Extism plugin and the rows are ours / Extism.

No timing is asserted: the plugin's behaviour and the table's shape only.
"""

from __future__ import annotations

import pytest
import wasmtime

from bench import extism_compare
from bench.extism_compare import ECHO_WAT, INPUT, echo_plugin_wasm, extism_call, load_extism, summarize


def test_the_echo_plugin_imports_only_the_extism_kernel_and_exports_echo() -> None:
    module = wasmtime.Module(wasmtime.Engine(), echo_plugin_wasm())
    assert {(i.module, i.name) for i in module.imports} == {
        ("extism:host/env", name)
        for name in (
            "input_length",
            "input_load_u64",
            "input_load_u8",
            "alloc",
            "store_u64",
            "store_u8",
            "output_set",
        )
    }
    echo = next(e for e in module.exports if e.name == "echo")
    assert isinstance(echo.type, wasmtime.FuncType)
    assert (echo.type.params, [str(r) for r in echo.type.results]) == ([], ["i32"])
    assert "extism:host/env" in ECHO_WAT


@pytest.mark.parametrize("data", [b"", b"hello", b"0123456789abcdef", b"0123456789abcdefXYZ" * 40])
def test_extism_runs_the_plugin_as_an_echo_with_a_fresh_plugin_per_call(data: bytes) -> None:
    sdk = load_extism()
    assert sdk is not None, "extism is in the [dev] extra"
    compiled = sdk.CompiledPlugin(echo_plugin_wasm(), wasi=False, functions=[])
    for _ in range(2):  # a second Plugin from the same CompiledPlugin sees a fresh kernel
        with sdk.Plugin(compiled, functions=[]) as plugin:
            assert plugin.call("echo", data) == data


def test_the_benchmarked_extism_call_checks_its_answer() -> None:
    sdk = load_extism()
    assert sdk is not None
    assert extism_call(sdk)() == INPUT


def test_rows_are_ours_and_the_bare_floor_over_extism() -> None:
    ours = [float(v) for v in range(1, 101)]  # p50 51, p99 100, mean 50.5
    theirs = [2.0 * v for v in ours]
    bare = [v / 2.0 for v in ours]
    rows = summarize(ours, theirs, bare, "1.41.0")
    assert [r.figure.rsplit("(", 1)[1] for r in rows] == ["p50)", "p99)", "mean)", "p50)"]
    assert rows[3].figure.startswith("bare wasmtime-py")
    assert [(r.value, r.baseline, r.ratio) for r in rows] == [
        (51.0, 102.0, 0.5),
        (100.0, 200.0, 0.5),
        (50.5, 101.0, 0.5),
        (25.5, 102.0, 0.25),
    ]
    assert all(r.baseline_figure.startswith("Extism 1.41.0 ") and r.unit == "µs" for r in rows)
    assert rows[0].extra == {"n": 100, "goal_ratio": extism_compare.GOAL}


def test_rows_skip_with_a_message_when_extism_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(extism_compare, "load_extism", lambda: None)
    assert extism_compare.rows(rounds=1) == []
    assert "extism is not installed" in capsys.readouterr().err
