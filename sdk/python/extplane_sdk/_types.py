"""Request and Response: plain Python over the WIT records (bodies are bytes here, text or base64 there)."""

from __future__ import annotations

import base64
import json as _json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    @property
    def args(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        raw = _json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return cls(status, [("content-type", "application/json"), *(headers or [])], raw)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, [("content-type", "text/plain; charset=utf-8")], text.encode("utf-8"))


def encode_body(body: bytes) -> tuple[str, bool]:
    """WIT bodies are strings: UTF-8 text as is, anything else base64 with the flag set."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def decode_body(text: str, is_base64: bool) -> bytes:
    return base64.b64decode(text) if is_base64 else text.encode("utf-8")
