"""`extctl call NAME PATH --tenant T [--method M] [--data JSON]`: call an extension through the gateway.

Where: `EXT_GATEWAY_URL` (environment, else `.extplane/dev.env`).
As whom, in order:
  1. `--token` or `EXT_TOKEN`: a tenant token (`extctl tokens create --tenant T --scope ext:read ...`).
     `--tenant` is still sent (`x-extplane-tenant`), so the gateway refuses the call (403
     tenant_mismatch) when the token belongs to another tenant instead of silently using the token's.
  2. otherwise `EXT_ADMIN_TOKEN`: operator impersonation. The gateway accepts a global token with the
     `admin` scope for exactly the tenant named in `x-extplane-tenant`, logs it as an operator call and
     counts it (api/gateway/auth.py). Tenant tokens can never do this, so the admin token stays the
     only key that opens every tenant, as it already is for the operator API.

Prints the handler's body (or, with --json, status, headers, body, request id). Exits 1 with one line
`error: <code>: <message>` when the gateway refuses the call or the handler answers >= 400.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cli.devstack.stack import read_env_file
from cli.output import STATE, emit, fail

app = typer.Typer()

DEV_ENV = Path(".extplane") / "dev.env"
TIMEOUT = httpx.Timeout(10.0, read=120.0)
SHOWN_HEADERS = ("content-type", "cache-control", "etag", "retry-after", "x-request-id")


def _setting(key: str, file_env: dict[str, str]) -> str:
    return os.environ.get(key) or file_env.get(key, "")


def _decoded(resp: httpx.Response) -> Any:
    if "json" in resp.headers.get("content-type", ""):
        try:
            return resp.json()
        except ValueError:
            pass
    return resp.text


@app.command("call")
def call(
    name: Annotated[str, typer.Argument(help="extension name, e.g. com.acme.hello")],
    path: Annotated[str, typer.Argument(help="endpoint path (with optional ?query), e.g. /hello")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose install to call")],
    method: Annotated[
        str | None, typer.Option("--method", "-X", help="default: GET, or POST with --data")
    ] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="JSON request body")] = None,
    token: Annotated[str | None, typer.Option("--token", help="tenant token (default: EXT_TOKEN)")] = None,
) -> None:
    """Call NAME's endpoint PATH as TENANT through the gateway and print the answer."""
    file_env = read_env_file(DEV_ENV)
    base = _setting("EXT_GATEWAY_URL", file_env).rstrip("/")
    if not base:
        fail("invalid_request", "no gateway: set EXT_GATEWAY_URL or run `extctl dev up`")
    bearer = token or _setting("EXT_TOKEN", file_env) or _setting("EXT_ADMIN_TOKEN", file_env)
    if not bearer:
        fail(
            "unauthenticated",
            "no token: pass --token, set EXT_TOKEN, or EXT_ADMIN_TOKEN for an operator call",
        )
    body: bytes | None = None
    if data is not None:
        try:
            json.loads(data)
        except ValueError as exc:
            fail("invalid_request", f"--data is not valid JSON: {exc}")
        body = data.encode()
    verb = (method or ("POST" if body is not None else "GET")).upper()
    headers = {"authorization": f"Bearer {bearer}", "x-extplane-tenant": tenant}
    if body is not None:
        headers["content-type"] = "application/json"
    url = f"{base}/api/ext/{name}/{path.lstrip('/')}"
    try:
        resp = httpx.request(verb, url, headers=headers, content=body, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        fail("bad_gateway", f"cannot reach the gateway at {base}: {exc}")
    payload = _decoded(resp)
    if resp.status_code >= 400:
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            fail(payload["error"], f"{payload.get('message', '')} (HTTP {resp.status_code})")
        first = resp.text.strip().splitlines()[0] if resp.text.strip() else resp.reason_phrase
        fail("handler_error", f"HTTP {resp.status_code}: {first}")
    if STATE.json_mode:
        emit(
            {
                "status": resp.status_code,
                "headers": {k: resp.headers[k] for k in SHOWN_HEADERS if k in resp.headers},
                "body": payload,
                "request_id": resp.headers.get("x-request-id", ""),
            }
        )
    else:
        emit(None, human=resp.text)
