"""One check of every path and query parameter of the operator API, run before any route code.

Parameter text ends up in Postgres queries (which refuse NUL: a 500 from asyncpg), in Temporal workflow
ids (bounded in length) and in log lines, so each route used to need its own guard and eight read
routes had none. Every router of the operator API installs `CheckParams` as a router dependency
instead: a NUL or lone surrogate, bytes that are not UTF-8 once percent-decoded (a percent-encoded
surrogate such as `%ED%A0%80` is one), or a value longer than MAX_PARAM_CHARS is `400 invalid_request`
naming the parameter and never echoing the value. tests/api/test_params.py walks the app's OpenAPI
document, so a new route or parameter is covered (and a router without the check is caught) at once.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request

from core.errors import InvalidInput
from schema.jsontext import unstorable
from schema.tenants import TENANT_RULE, valid_tenant

# Longer than any legitimate value (the longest are operation ids `install/<tenant>/<name>/change/<key>`,
# under 500 characters) and short enough for a workflow id or a log line.
MAX_PARAM_CHARS = 1024
# A query parameter name is echoed only when it looks like one of ours.
_ECHOABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NOT_UTF8 = "is not valid UTF-8 once percent-decoded (a lone surrogate, or bytes that are not text)"


def _text_problem(text: str) -> str | None:
    if len(text) > MAX_PARAM_CHARS:
        return f"is longer than {MAX_PARAM_CHARS} characters"
    unfit = unstorable(text)
    return unfit[1] if unfit is not None else None


def _query_pairs(query_string: bytes) -> list[tuple[bytes, bytes]]:
    """`name=value` pairs, percent-decoded to bytes, split as Starlette splits them (on `&`)."""
    pairs = []
    for part in query_string.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append(
                (unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" ")))
            )
    return pairs


def _unquote(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")  # strict: refuses encoded surrogates as well as stray bytes
    except UnicodeDecodeError:
        return None


def _check_path(request: Request) -> None:
    # Servers decode the path with errors="replace", so invalid UTF-8 reaches the route as U+FFFD:
    # the raw path tells whether that U+FFFD was sent as such or stands for bytes that are not text.
    raw_path = request.scope.get("raw_path")
    path_is_text = raw_path is None or _decoded(unquote_to_bytes(raw_path)) is not None
    for name, value in request.path_params.items():
        if not isinstance(value, str):
            continue
        problem = _text_problem(value)
        if problem is None and not path_is_text and "\ufffd" in value:
            problem = _NOT_UTF8
        if problem is not None:
            raise InvalidInput(f"path parameter {name!r} {problem}", details={"parameter": name})


def _check_query(request: Request) -> None:
    for raw_name, raw_value in _query_pairs(request.scope.get("query_string", b"")):
        name = _decoded(raw_name)
        if name is None or _text_problem(name) is not None:
            raise InvalidInput("a query parameter name is not text this API accepts")
        # Routes ignore parameters they do not declare, but one of them may still be logged.
        label = f"query parameter {name!r}" if _ECHOABLE_NAME.fullmatch(name) else "a query parameter"
        value = _decoded(raw_value)
        problem = _NOT_UTF8 if value is None else _text_problem(value)
        if problem is not None:
            details = {"parameter": name} if label != "a query parameter" else None
            raise InvalidInput(f"{label} {problem}", details=details)
        # A tenant filter no tenant can match is a mistake, not an empty answer (the spec's pattern).
        if name == "tenant" and value is not None and not valid_tenant(value):
            raise InvalidInput(f"query parameter 'tenant' must be {TENANT_RULE}", details={"parameter": name})


async def check_params(request: Request) -> None:
    """Raise 400 invalid_request for the first path or query parameter no layer behind can hold."""
    _check_path(request)
    _check_query(request)


CheckParams = Depends(check_params)
