"""JSON values the registry cannot store, found before they reach a workflow.

Python's JSON reader accepts three things that Postgres' jsonb (and any strict JSON reader) refuses:
NUL characters and lone surrogates, which `\\u` escapes can produce, and NaN/Infinity. Accepted at the
edge, such a value makes the activity that writes it fail on every retry while the caller waits, so the
manifest parser, the operator API and the registry write all refuse it up front with its location.
"""

from __future__ import annotations

import math
import re
from typing import Any

Location = tuple[str | int, ...]

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: Any) -> tuple[Location, str] | None:
    """(location, problem) of the first unstorable key, string or number in `value`, else None.

    The location names keys and list indexes only up to the bad spot, and a bad key is reported at its
    parent: messages never echo the offending text (it may not even be encodable). Iterative, and a
    location is only built for the one spot reported, so any nesting depth is walked in linear time.
    """
    crumbs: list[tuple[int, str | int]] = []  # (parent crumb, key or index); -1 is the root
    stack: list[tuple[Any, int]] = [(value, -1)]
    while stack:
        node, crumb = stack.pop()
        if isinstance(node, str):
            bad = _BAD_TEXT.search(node)
            if bad is not None:
                return _location(crumbs, crumb), _text_problem(bad.group())
        elif isinstance(node, dict):
            for key in node:
                bad = _BAD_TEXT.search(key) if isinstance(key, str) else None
                if bad is not None:
                    return _location(crumbs, crumb), "a key " + _text_problem(bad.group())
            for key, item in node.items():
                crumbs.append((crumb, key))
                stack.append((item, len(crumbs) - 1))
        elif isinstance(node, list | tuple):
            for i, item in enumerate(node):
                crumbs.append((crumb, i))
                stack.append((item, len(crumbs) - 1))
        elif isinstance(node, float) and not math.isfinite(node):
            return _location(crumbs, crumb), "is not a finite number (NaN and Infinity are not JSON)"
    return None


def _location(crumbs: list[tuple[int, str | int]], crumb: int) -> Location:
    parts: list[str | int] = []
    while crumb >= 0:
        crumb, part = crumbs[crumb]
        parts.append(part)
    return tuple(reversed(parts))


def _text_problem(ch: str) -> str:
    if ch == "\x00":
        return "contains a NUL character (U+0000), which cannot be stored"
    return f"contains U+{ord(ch):04X}, a lone surrogate, which is not valid Unicode text"


def dotted(loc: Location) -> str:
    """`a.b[0].c`: the manifest's field-path style."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def json_path(loc: Location) -> str:
    """`$.a[0].c`: the JSON Schema validator's style, used for config issues."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
