"""`python -m bench`: every selected module runs exactly once, those that need Postgres/Redis inside
the shared services and the others outside them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.report import Row


def _fake(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> tuple[list[tuple[str, bool]], list[bool]]:
    ran: list[tuple[str, bool]] = []
    inside = [False]
    entered: list[bool] = []

    def module(name: str) -> Callable[[], list[Row]]:
        def rows() -> list[Row]:
            ran.append((name, inside[0]))
            return [Row(f"{name} figure", 1.0, "µs")]

        return rows

    @contextlib.contextmanager
    def services(enabled: bool) -> Iterator[None]:
        entered.append(enabled)
        inside[0] = enabled
        try:
            yield
        finally:
            inside[0] = False

    monkeypatch.setattr(bench_main, "_runners", lambda _quick: {n: module(n) for n in names})
    monkeypatch.setattr(bench_main, "_shared_services", services)
    return ran, entered


def test_without_a_module_that_needs_services_each_runs_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran, entered = _fake(monkeypatch, ["conversion"])
    assert bench_main.main(["--out", str(tmp_path / "out.json")]) == 0
    assert ran == [("conversion", False)]
    assert entered == [False]


def test_modules_that_need_services_run_inside_them_and_the_rest_outside(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran, entered = _fake(monkeypatch, ["runner", "installs", "gateway", "control_plane"])
    assert bench_main.main(["--out", str(tmp_path / "out.json")]) == 0
    assert ran == [("runner", False), ("installs", True), ("gateway", True), ("control_plane", False)]
    assert entered == [True]
