"""The egress sample through the real runner: an allowed fetch works; a disallowed host, loopback and
metadata addresses (after resolution), operator policy and redirects are refused; the runner stays up.

The upstream is a local fake HTTP server on 127.0.0.2 (the one fake the brief allows); host names
resolve statically (EXT_EGRESS_RESOLVE) and go through the same address checks as DNS answers.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from tests.runner.runner_helpers import (
    ROOT,
    UPSTREAM_IP,
    RunnerProcess,
    envelope,
    free_port,
    publish,
    python_guest,
)

# The first test of the module builds Python guests (componentize + precompile, ~30 s each on 2 cores,
# cached in tests/.artifacts): beyond the suite's 60 s per-test budget on a cold cache.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
CAPS = ["cap:http.fetch"]
EGRESS = [
    "api.example.test",
    "loopback.example.test",
    "metadata.example.test",
    "redir.example.test",
    "other.example.test",
]


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = cast(Any, self.server).server_address[1]
        if self.path == "/data":
            self._send(200, b"upstream ok")
        elif self.path == "/to-loopback":
            self._redirect(f"http://loopback.example.test:{port}/data")
        elif self.path == "/to-ok":
            self._redirect(f"http://api.example.test:{port}/data")
        elif self.path == "/big":
            self._send(200, b"y" * (2 << 20))
        else:
            self._send(404, b"nope")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("location", location)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def upstream_port() -> Iterator[int]:
    server = ThreadingHTTPServer((UPSTREAM_IP, free_port(UPSTREAM_IP)), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def egress_guest(runner_proc: RunnerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    wasm, artifact = python_guest(ROOT / "examples" / "egress")
    doc = json.loads((ROOT / "examples" / "egress" / "manifest.json").read_text())
    return publish(runner_proc.data_dir, wasm, doc, tmp_path_factory.mktemp("pub"), artifact=artifact)


async def _fetch(runner: RunnerProcess, chash: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    env = envelope(
        chash,
        "/fetch",
        body=json.dumps({"url": url}).encode(),
        granted=CAPS,
        egress=kw.pop("egress", EGRESS),
        **kw,
    )
    async with runner.client() as client:
        resp = await client.post("/v1/execute", json=env)
    body = resp.json()
    assert resp.status_code == 200, body
    return body["status"], json.loads(base64.b64decode(body["body_b64"]))


async def test_sample_fetches_its_configured_upstream(
    runner_proc: RunnerProcess, egress_guest: str, upstream_port: int
) -> None:
    env = envelope(
        egress_guest,
        "/upstream",
        method="GET",
        granted=CAPS,
        egress=["api.example.test"],
        config={"upstream_url": f"http://api.example.test:{upstream_port}/data"},
    )
    async with runner_proc.client() as client:
        body = (await client.post("/v1/execute", json=env)).json()
    assert json.loads(base64.b64decode(body["body_b64"])) == {"status": 200, "body": "upstream ok"}


@pytest.mark.parametrize(
    ("url", "kind", "why"),
    [
        ("http://evil.example.com:{port}/data", "not-allowed", "not in the extension's egress list"),
        ("http://127.0.0.1:{port}/data", "not-allowed", "not in the extension's egress list"),
        ("http://loopback.example.test:{port}/data", "not-allowed", "loopback"),
        ("http://metadata.example.test/latest/meta-data/", "not-allowed", "metadata"),
        ("http://other.example.test:{port}/data", "not-allowed", "operator policy"),
        ("http://redir.example.test:{port}/to-loopback", "not-allowed", "loopback"),
        ("http://api.example.test:{port}/big", "too-large", None),
        ("ftp://api.example.test/data", "invalid-url", None),
    ],
    ids=["host", "loopback-literal", "loopback-dns", "metadata", "operator", "redirect", "size", "scheme"],
)
async def test_refused_fetches(
    runner_proc: RunnerProcess, egress_guest: str, upstream_port: int, url: str, kind: str, why: str | None
) -> None:
    status, data = await _fetch(runner_proc, egress_guest, url.format(port=upstream_port))
    assert (status, data["error"]) == (502, kind), data
    if why:
        assert why in data["detail"]
    # the runner and the guest are fine afterwards
    status, data = await _fetch(runner_proc, egress_guest, f"http://api.example.test:{upstream_port}/data")
    assert (status, data) == (200, {"status": 200, "body": "upstream ok"})


async def test_allowed_redirect_is_followed(
    runner_proc: RunnerProcess, egress_guest: str, upstream_port: int
) -> None:
    status, data = await _fetch(runner_proc, egress_guest, f"http://redir.example.test:{upstream_port}/to-ok")
    assert (status, data) == (200, {"status": 200, "body": "upstream ok"})


async def test_fetch_without_the_capability_is_denied(
    runner_proc: RunnerProcess, egress_guest: str, upstream_port: int
) -> None:
    env = envelope(
        egress_guest,
        "/fetch",
        body=json.dumps({"url": f"http://api.example.test:{upstream_port}/data"}).encode(),
        egress=EGRESS,
    )
    async with runner_proc.client() as client:
        body = (await client.post("/v1/execute", json=env)).json()
    assert json.loads(base64.b64decode(body["body_b64"]))["error"] == "denied"
