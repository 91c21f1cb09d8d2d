"""Header policy, body reading and the runner-answer mapping of `/api/ext` (reference §5.2-5.3).

In: authorization, cookies, proxy credentials, hop-by-hop headers (and any header named in
`Connection`), tenant claims and internal headers never reach the guest; the gateway sets
`x-request-id` and, for non-GET, `x-idempotency-key`.
Out: only the extension's content-type, cache-control (minus `immutable`: a dynamic answer is never
cacheable forever), etag and `x-ext-*`; never set-cookie or hop-by-hop. Values with CR/LF/NUL are
dropped rather than trusted to the server to reject.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from api.gateway.errors import BadGateway, HandlerTimeout, PayloadTooLarge, RunnerBusy

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
NEVER_FORWARDED = HOP_BY_HOP | {
    b"authorization",
    b"cookie",
    b"x-request-id",
    b"x-idempotency-key",
    b"x-runner-auth",
    b"x-tenant-id",
    b"x-extplane-tenant",
}
RESPONSE_ALLOWED = frozenset({"content-type", "cache-control", "etag"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_SAFE_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
DEFAULT_CACHE_CONTROL = "no-store"
MAX_FORWARDED_HEADERS = 200
_BIGINT_MAX = 2**63 - 1


def forward_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The tenant's request headers the guest may see (without the ones the gateway sets)."""
    listed: set[bytes] = set()
    for name, value in raw:
        if name == b"connection":
            listed.update(t.strip().lower() for t in value.split(b","))
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name not in NEVER_FORWARDED and name not in listed
    ]
    return out[:MAX_FORWARDED_HEADERS]


def _cache_control(value: str) -> str:
    kept = [d.strip() for d in value.split(",") if d.strip() and d.strip().lower() != "immutable"]
    return ", ".join(kept)


def response_headers(pairs: list[Any]) -> list[tuple[bytes, bytes]]:
    """The extension's own response headers that may reach the tenant."""
    out: list[tuple[bytes, bytes]] = []
    has_cache_control = False
    for pair in pairs:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise BadGateway("runner answer has a malformed header")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadGateway("runner answer has a malformed header")
        name = name.lower()
        if not (name in RESPONSE_ALLOWED or name.startswith("x-ext-")):
            continue
        if not _TOKEN.match(name) or not _SAFE_VALUE.match(value):
            continue
        if name == "cache-control":
            value = _cache_control(value)
            if not value:
                continue
            has_cache_control = True
        out.append((name.encode(), value.encode("latin-1")))
    if not has_cache_control:
        out.append((b"cache-control", DEFAULT_CACHE_CONTROL.encode()))
    return out


async def read_body(receive: Receive, *, limit: int, declared: int | None) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed `limit` — from
    Content-Length before reading anything, else once the streamed chunks pass it."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadGateway("client disconnected while sending the body")
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class HandlerAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    fuel_consumed: int | None = None  # the runner's metrics.fuel_consumed, for execution_log


def map_runner_reply(status: int, body: bytes) -> HandlerAnswer:
    """The tenant-facing answer for a runner reply (schema.envelope documents the runner's statuses)."""
    if status == 504:
        raise HandlerTimeout("the handler ran past its deadline")
    if status == 503 and _runner_code(body) == "runner_busy":
        # Shed by the runner before the guest ran (full, the tenant's share, or queued too long).
        raise RunnerBusy("no runner capacity for this call right now; retry later")
    if status != 200:
        raise BadGateway(f"runner failed: {_runner_code(body) or f'HTTP {status}'}")
    try:
        doc = json.loads(body)
        handler_status = doc["status"]
        headers = doc.get("headers") or []
        payload = base64.b64decode(doc.get("body_b64") or "", validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadGateway("runner answer is not a valid execute response") from exc
    metrics = doc.get("metrics")
    fuel = metrics.get("fuel_consumed") if isinstance(metrics, dict) else None
    return handler_answer(handler_status, headers, payload, fuel)


def handler_answer(status: Any, headers: Any, payload: bytes, fuel: Any) -> HandlerAnswer:
    """The tenant-facing answer of a handler that ran, from what its runner reported: a remote one's
    JSON (`map_runner_reply`) or a co-located one's Outcome (api.gateway.colocated)."""
    if not isinstance(status, int) or not 200 <= status <= 599 or not isinstance(headers, list):
        raise BadGateway("runner answer carries an invalid handler status or headers")
    if status in (204, 304):
        payload = b""
    return HandlerAnswer(status, response_headers(headers), payload, _fuel_value(fuel))


def failed_run_fuel(body: bytes) -> int | None:
    """metrics.fuel_consumed of a runner's error answer: present when the guest ran and then trapped,
    ran out of fuel or past its deadline; None when it never ran (busy, module not found, ...)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return _fuel(doc.get("metrics")) if isinstance(doc, dict) else None


def _fuel(metrics: Any) -> int | None:
    return _fuel_value(metrics.get("fuel_consumed")) if isinstance(metrics, dict) else None


def _fuel_value(fuel: Any) -> int | None:
    # bool is an int; and a value past bigint would fail the whole COPY batch it sits in.
    return fuel if type(fuel) is int and 0 <= fuel <= _BIGINT_MAX else None


def _runner_code(body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") if isinstance(error, dict) else error
    return code if isinstance(code, str) and _TOKEN.match(code) else None


def error_body(code: str, message: str, request_id: str) -> bytes:
    return json.dumps({"error": code, "message": message, "request_id": request_id}).encode()
