"""Outbound HTTP (`cap:http.fetch`): only to hosts in the manifest's egress list that policy allows."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any

from componentize_py_types import Err
from wit_world.imports import http as _http
from wit_world.imports import types

from extplane_sdk._errors import from_err
from extplane_sdk._types import decode_body, encode_body


@dataclass
class FetchResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout_ms: int = 0,
) -> FetchResponse:
    """Raises HostError: `not-allowed`, `invalid-url`, `timeout`, `too-large`, `transport`, `denied`."""
    text, is_b64 = encode_body(body)
    req = _http.HttpRequest(
        method=method,
        url=url,
        headers=[types.Header(name=k, value=v) for k, v in (headers or [])],
        body=text,
        body_base64=is_b64,
        timeout_ms=timeout_ms,
    )
    try:
        resp = _http.fetch(req)
    except Err as exc:
        raise from_err(exc) from None
    return FetchResponse(
        resp.status, [(h.name, h.value) for h in resp.headers], decode_body(resp.body, resp.body_base64)
    )
