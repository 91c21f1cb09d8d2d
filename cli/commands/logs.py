"""`extctl logs NAME --tenant T [--install I] [--request R] [--tail N]`: follow the debug stream.

Reads `GET $EXT_GATEWAY_URL/api/ext-debug/stream` (SSE). Authentication is `extctl call`'s: `--token`
or `EXT_TOKEN` (a tenant token with `ext:debug`), else `EXT_ADMIN_TOKEN` acting for `--tenant`
(`x-extplane-tenant`). The extension's install must grant `cap:debug.logs` (docs/debug-stream.md).

Prints one colored line per event (time, level, stream, request id, message), or with `--json` one
JSON event per line. `warning` events (the stream's Redis is down) go to stderr and the command keeps
following; when the gateway ends a session (`session_expired`, shutdown) or the connection drops, it
reconnects with `Last-Event-ID`, so nothing is replayed twice and nothing is skipped. `--no-follow`
prints the last events once (the polling endpoint) and exits. Ctrl-C exits 0.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from cli.devstack.stack import read_env_file
from cli.output import STATE, fail

app = typer.Typer()

DEV_ENV = Path(".extplane") / "dev.env"
# Heartbeats arrive every 15 s by default: a read silent for much longer means a dead connection.
TIMEOUT = httpx.Timeout(10.0, read=60.0)
LEVEL_STYLES = {"debug": "dim", "info": "green", "warn": "yellow", "error": "bold red"}
STREAM_STYLES = {"log": "cyan", "stdout": "blue", "stderr": "magenta", "runner": "red"}
MAX_BACKOFF_S = 10.0


def _setting(key: str, file_env: dict[str, str]) -> str:
    return os.environ.get(key) or file_env.get(key, "")


def render(event: dict[str, Any]) -> Text:
    """One human line: `12:00:01.234 INFO  stdout  req=ab12cd34  message`."""
    try:
        when = datetime.fromtimestamp(float(event.get("ts", 0))).strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError, OverflowError):
        when = "--:--:--.---"
    level = str(event.get("level", ""))
    stream = str(event.get("stream", ""))
    line = Text(when + " ", style="dim")
    line.append(f"{level.upper():<5} ", style=LEVEL_STYLES.get(level, ""))
    line.append(f"{stream:<6} ", style=STREAM_STYLES.get(stream, ""))
    line.append(f"req={str(event.get('request_id', ''))[:12]} ", style="dim")
    line.append(str(event.get("message", "")).rstrip("\n"))
    if event.get("truncated"):
        line.append(" [truncated]", style="yellow")
    return line


class _Printer:
    def __init__(self, *, json_out: bool) -> None:
        self.json_out = json_out
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def event(self, event: dict[str, Any]) -> None:
        if self.json_out:
            typer.echo(json.dumps(event, separators=(",", ":")))
        else:
            self.out.print(render(event))

    def notice(self, kind: str, data: dict[str, Any]) -> None:
        style = "yellow" if kind == "warning" else "dim"
        message = data.get("message") or data.get("code") or kind
        self.err.print(Text(f"[{kind}] {data.get('code', '')}: {message}", style=style))


def _raise_for(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    resp.read()
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        fail(body["error"], f"{body.get('message', '')} (HTTP {resp.status_code})")
    fail("bad_gateway", f"HTTP {resp.status_code} from the gateway")


def _follow(
    client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str], printer: _Printer
) -> None:
    last_id: str | None = None
    backoff = 0.5
    connected = False
    while True:
        hdrs = dict(headers)
        if last_id is not None:
            hdrs["last-event-id"] = last_id
        try:
            with client.stream("GET", url, params=params, headers=hdrs) as resp:
                _raise_for(resp)
                connected = True
                backoff = 0.5
                event, data = "message", ""
                entry_id: str | None = None
                for line in resp.iter_lines():
                    if line == "":
                        if data:
                            doc = json.loads(data)
                            if event == "message":
                                printer.event(doc)
                                last_id = entry_id or last_id
                            elif event in ("warning", "session_expired", "session_end", "resumed"):
                                printer.notice(event, doc)
                        event, data, entry_id = "message", "", None
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line.startswith("id:"):
                        entry_id = line[3:].strip()
        except httpx.HTTPError as exc:
            if not connected:
                fail("bad_gateway", f"cannot reach the gateway at {url}: {exc}")
            printer.notice("warning", {"code": "disconnected", "message": f"{exc}; reconnecting"})
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            continue


@app.command("logs")
def logs(
    name: Annotated[str, typer.Argument(help="extension name, e.g. com.acme.hello")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose install to watch")],
    install: Annotated[str | None, typer.Option("--install", help="only events of this install id")] = None,
    request: Annotated[str | None, typer.Option("--request", help="only events of this request id")] = None,
    tail: Annotated[
        int, typer.Option("--tail", min=0, max=2000, help="replay the last N events first")
    ] = 200,
    token: Annotated[str | None, typer.Option("--token", help="tenant token (default: EXT_TOKEN)")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="keep following")] = True,
) -> None:
    """Follow NAME's debug stream in TENANT: guest logs, stdout, stderr and runner failures."""
    file_env = read_env_file(DEV_ENV)
    base = _setting("EXT_GATEWAY_URL", file_env).rstrip("/")
    if not base:
        fail("invalid_request", "no gateway: set EXT_GATEWAY_URL or run `extctl dev up`")
    bearer = token or _setting("EXT_TOKEN", file_env) or _setting("EXT_ADMIN_TOKEN", file_env)
    if not bearer:
        fail("unauthenticated", "no token: pass --token, set EXT_TOKEN, or EXT_ADMIN_TOKEN for an operator")
    headers = {"authorization": f"Bearer {bearer}", "x-extplane-tenant": tenant}
    params: dict[str, Any] = {"extension": name, "tail": tail}
    if install:
        params["install"] = install
    if request:
        params["request"] = request
    printer = _Printer(json_out=STATE.json_mode)  # `--json` (cli.json_flag): one event per line
    url = f"{base}/api/ext-debug/stream"
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            if not follow:
                try:
                    resp = client.post(url, params=params, headers=headers, json={})
                except httpx.HTTPError as exc:
                    fail("bad_gateway", f"cannot reach the gateway at {base}: {exc}")
                _raise_for(resp)
                doc = resp.json()
                if doc.get("warning"):
                    printer.notice("warning", doc["warning"])
                for event in doc.get("events", []):
                    printer.event(event)
                return
            _follow(client, url, params, headers, printer)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
