"""The one table `python -m bench` prints and writes: figure, value, baseline, ratio.

Every bench module exposes `rows(...) -> list[Row]` (measured in one process run, baseline and subject
interleaved) next to its `main()`, which still prints the module's own detailed output. A row's
baseline is in the row's unit; `ratio` is value / baseline unless the module sets it (for throughput,
where higher is better, it is still value / baseline: read it with the unit).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LATEST = RESULTS_DIR / "latest.json"


@dataclass(frozen=True)
class Row:
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    baseline_figure: str = ""  # what the baseline measures, when the figure name does not say
    group: str = ""  # the bench module that measured it
    extra: dict[str, Any] = field(default_factory=dict)  # spread etc., JSON only

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            object.__setattr__(self, "ratio", self.value / self.baseline)


def grouped(group: str, rows: list[Row]) -> list[Row]:
    return [Row(**{**asdict(r), "group": group}) for r in rows]


def _num(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".rstrip()


def _ratio(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return f"{ratio:.4f}x" if abs(ratio) < 0.1 else f"{ratio:.2f}x"


def render(rows: list[Row]) -> str:
    """A fixed-width table: figure | value | baseline | ratio, one section per group."""
    header = ("figure", "value", "baseline", "ratio")
    cells = [
        (
            r.figure,
            _num(r.value, r.unit),
            _num(r.baseline, r.unit) + (f" ({r.baseline_figure})" if r.baseline_figure else ""),
            _ratio(r.ratio),
        )
        for r in rows
    ]
    widths = [max([len(header[i])] + [len(c[i]) for c in cells]) for i in range(4)]
    widths[2] = min(widths[2], 60)

    def line(c: tuple[str, str, str, str]) -> str:
        return f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]:>{widths[3]}}".rstrip()

    out = [line(header), "-" * (sum(widths) + 6)]
    group = None
    for r, c in zip(rows, cells, strict=True):
        if r.group != group and r.group:
            out.append(f"[{r.group}]")
            group = r.group
        out.append(line(c))
    return "\n".join(out)


def to_json(rows: list[Row], *, errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "columns": ["figure", "value", "unit", "baseline", "ratio"],
        "rows": [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
            for r in rows
        ],
        "errors": errors or {},
    }


def write_json(rows: list[Row], path: Path = LATEST, *, errors: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}")  # matches the *.json ignore rule too
    tmp.write_text(json.dumps(to_json(rows, errors=errors), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path
