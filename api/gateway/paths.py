"""Path-segment checks for what the gateway routes or forwards: no traversal, however it is encoded.

A raw request target reaches the gateway as sent (uvicorn does not normalize it), and whatever the
gateway forwards may be normalized again downstream: httpx removes `.`/`..` segments from a URL
(RFC 3986 5.2.4) and the runner's server percent-decodes it once more. A segment is therefore judged
by every form it can take on the way: as sent and after each further percent-decoding (`%2e%2e`,
`%2E.`, `%252e%252e`, ...), bounded by MAX_DECODINGS.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_DECODINGS = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def forms(segment: str) -> list[str] | None:
    """`segment` and its successive percent-decodings until stable; None when still changing after
    MAX_DECODINGS (no legitimate path is encoded that many times)."""
    out = [segment]
    while "%" in out[-1]:
        decoded = unquote(out[-1])
        if decoded == out[-1]:
            break
        if len(out) > MAX_DECODINGS:
            return None
        out.append(decoded)
    return out


def dot_segment(segment: str) -> bool:
    """Whether `segment` is, or decodes to, `.` or `..` (or decodes too many times to tell)."""
    if "." not in segment and "%" not in segment:
        return False
    decoded = forms(segment)
    return decoded is None or any(f in (".", "..") for f in decoded)


def has_dot_segment(path: str) -> bool:
    return any(dot_segment(seg) for seg in path.split("/"))


def safe_asset_path(rest: str) -> bool:
    """Whether `rest` (the raw path after `/ext-ui/{name}/{hash}/`) may be forwarded to a runner.

    Refused: a segment that is or decodes to `.`/`..` or any other dot-leading name (the runner serves
    no hidden files either), an empty segment other than one trailing slash (`a//b`, a leading `/`), a
    backslash or an encoded slash in any form, control characters, and over-encoded segments."""
    if rest == "":
        return True
    segments = rest.split("/")
    if segments[-1] == "":
        segments.pop()  # `css/`: a directory, answered with the entry page
    for seg in segments:
        decoded = forms(seg) if seg else None
        if decoded is None:
            return False
        for form in decoded:
            if form.startswith(".") or "/" in form or "\\" in form or _CONTROL.search(form):
                return False
    return True
