"""The operator-API client of extctl: where the API is, how to call it, and how its errors look.

Base URL and token come from `EXT_API_URL` / `EXT_ADMIN_TOKEN`, or else from `.extplane/dev.env`
(written by `extctl dev up`). An API error body `{"error", "message"}` becomes `ApiError`, which
commands turn into the one-line `error: <code>: <message>` of cli.output.fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
from rich.console import Console

from cli.devstack.stack import read_env_file
from cli.output import STATE, fail

DEV_ENV = Path(".extplane") / "dev.env"
# Workflows can take a while (publish precompiles a component); the API itself caps its wait.
TIMEOUT = httpx.Timeout(10.0, read=300.0)


class ApiError(Exception):
    def __init__(self, code: str, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ApiConfig:
    base_url: str
    token: str


def load_config(environ: Mapping[str, str] | None = None, env_file: Path = DEV_ENV) -> ApiConfig:
    """Environment first, then the dev stack's env file; fails (one line) when there is no API URL."""
    env = os.environ if environ is None else environ
    file_env = read_env_file(env_file)
    base = env.get("EXT_API_URL") or file_env.get("EXT_API_URL", "")
    token = env.get("EXT_ADMIN_TOKEN") or file_env.get("EXT_ADMIN_TOKEN", "")
    if not base:
        fail("invalid_request", "no operator API: set EXT_API_URL or run `extctl dev up`")
    return ApiConfig(base_url=base.rstrip("/"), token=token)


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on stderr while a workflow runs (only on a terminal, never in --json mode)."""
    console = Console(stderr=True)
    if STATE.json_mode or not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def _error_of(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return ApiError(body["error"], str(body.get("message", "")), status=resp.status_code)
    text = resp.text.strip().splitlines()[0] if resp.text.strip() else resp.reason_phrase
    return ApiError("internal", f"HTTP {resp.status_code}: {text}", status=resp.status_code)


class ApiClient:
    def __init__(self, config: ApiConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"authorization": f"Bearer {config.token}"} if config.token else {}
        self.config = config
        self._http = httpx.Client(
            base_url=config.base_url, headers=headers, timeout=TIMEOUT, transport=transport
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call the API; returns the decoded JSON body. Raises ApiError."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self._http.request(
                method, path, json=json_body, params=query, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ApiError(
                "control_plane_unavailable", f"cannot reach the operator API at {self.config.base_url}: {exc}"
            ) from exc
        if resp.status_code >= 400:
            raise _error_of(resp)
        return resp.json() if resp.content else None

    def close(self) -> None:
        self._http.close()


def fail_api(exc: ApiError) -> NoReturn:
    fail(exc.code, exc.message)


def call(method: str, path: str, *, spinner: str | None = None, **kwargs: Any) -> Any:
    """One API call with the configured client; on error print the one-line reason and exit 1."""
    client = ApiClient(load_config())
    try:
        if spinner:
            with progress(spinner):
                return client.request(method, path, **kwargs)
        return client.request(method, path, **kwargs)
    except ApiError as exc:
        fail_api(exc)
    finally:
        client.close()


def parse_pairs(values: list[str], *, what: str, typed: bool = False) -> dict[str, Any]:
    """`k=v` arguments as a dict; with `typed`, a value that parses as JSON (1, true, {...}) is used
    as such, anything else as a string. A malformed one is named by its position, never quoted: it may
    be a secret value typed without its key (the line lands in terminals, CI logs, shell history)."""
    out: dict[str, Any] = {}
    for n, item in enumerate(values, start=1):
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail("invalid_request", f"{what} #{n} of {len(values)} must look like key=value (not shown)")
        if typed:
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def split_ref(ref: str) -> tuple[str, str]:
    """`NAME@VERSION` -> (name, version)."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        fail("invalid_request", f"expected NAME@VERSION, got {ref!r}")
    return name, version
