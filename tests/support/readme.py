"""The README's quick start: the one shell block between its `quick-start` markers, as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BEGIN, END = "<!-- quick-start:begin -->", "<!-- quick-start:end -->"


def quick_start_script() -> str:
    """The shell text of the quick start (the fenced block between the markers)."""
    text = README.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"README.md needs exactly one {BEGIN} ... {END} section")
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    if match is None:
        raise ValueError("the quick-start section has no ```sh block")
    return match.group(1)


def quick_start_commands() -> list[list[str]]:
    """Each command line of the quick start as shell words, comments dropped (`$(...)` kept whole)."""
    out = []
    for line in quick_start_script().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out
