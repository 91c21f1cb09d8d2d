"""bench.report: the one table and its JSON (shape only; no timing is ever asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.report import Row, grouped, render, write_json


def test_ratio_is_value_over_baseline_unless_given() -> None:
    assert Row("a", 30.0, "µs", 10.0).ratio == 3.0
    assert Row("a", 30.0, "µs").ratio is None
    assert Row("a", 30.0, "µs", 10.0, ratio=0.5).ratio == 0.5


def test_table_has_one_line_per_row_with_the_four_columns() -> None:
    rows = grouped("g1", [Row("first figure", 1234.5, "µs", 617.25, baseline_figure="floor")])
    rows += grouped("g2", [Row("second", 0.001, "ms", 2.0), Row("third", math.nan, "req/s")])
    lines = render(rows).splitlines()
    assert lines[0].split() == ["figure", "value", "baseline", "ratio"]
    assert "[g1]" in lines and "[g2]" in lines
    first = next(line for line in lines if line.startswith("first figure"))
    assert "1,234 µs" in first and "617 µs (floor)" in first and first.endswith("2.00x")
    assert next(line for line in lines if line.startswith("second")).endswith("0.0005x")
    assert next(line for line in lines if line.startswith("third")).endswith("-")


def test_json_has_the_same_rows(tmp_path: Path) -> None:
    rows = grouped("g", [Row("x", 2.0, "ms", 1.0, extra={"p99_ms": 3.0}), Row("y", math.inf, "MiB")])
    path = write_json(rows, tmp_path / "results" / "latest.json", errors={"gateway": "boom"})
    doc = json.loads(path.read_text())
    assert doc["columns"] == ["figure", "value", "unit", "baseline", "ratio"]
    assert [r["figure"] for r in doc["rows"]] == ["x", "y"]
    assert doc["rows"][0] == {
        "figure": "x",
        "value": 2.0,
        "unit": "ms",
        "baseline": 1.0,
        "ratio": 2.0,
        "baseline_figure": "",
        "group": "g",
        "extra": {"p99_ms": 3.0},
    }
    assert doc["rows"][1]["value"] is None  # non-finite numbers are written as null (valid JSON)
    assert doc["errors"] == {"gateway": "boom"}
    assert not list(path.parent.glob(".*"))  # the temporary file was renamed into place
