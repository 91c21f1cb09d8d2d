"""The egress sample through the real runner: an allowed fetch works; a disallowed host, loopback and
metadata addresses (after resolution), operator policy and redirects are refused; the runner stays up.

The upstream is a local fake HTTP server on 127.0.0.2 (the one fake the brief allows); host names
resolve statically (EXT_EGRESS_RESOLVE) and go through the same address checks as DNS answers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from runner._egress import EgressClient, EgressError
from runner._services import egress_policy
from tests.runner.runner_helpers import (
    EGRESS_SETTINGS,
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


DRIP_BYTES = 40  # the slow upstream sends one byte every DRIP_EVERY_S: ~8 s for the whole body
DRIP_EVERY_S = 0.2


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        port = cast(Any, self.server).server_address[1]
        received = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/echo":  # what reached this origin: headers and body
            seen = {k.lower(): v for k, v in self.headers.items() if k.lower() != "host"}
            self._send(200, json.dumps({"headers": seen, "body": received.decode()}).encode())
        elif self.path.startswith("/to-other/"):  # a redirect to another origin (host), status from the path
            status = int(self.path.rsplit("/", 1)[1])
            self._redirect(f"http://redir.example.test:{port}/echo", status)
        elif self.path.startswith("/to-same/"):
            self._redirect(f"http://api.example.test:{port}/echo", int(self.path.rsplit("/", 1)[1]))
        elif self.path == "/set-cookie":
            self.send_response(200)
            self.send_header("set-cookie", "session=tenant-a; Path=/")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("content-length", str(DRIP_BYTES))
            self.end_headers()
            self._drip(b"y" * DRIP_BYTES)
        elif self.path == "/drip-headers":  # the status line arrives, the headers never finish
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"x-slow: " + b"z" * DRIP_BYTES)
        elif self.path == "/data":
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

    def _drip(self, data: bytes) -> None:
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(DRIP_EVERY_S)
        except OSError:
            pass  # the client gave up: that is the point

    def _redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
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


@pytest.fixture
def client() -> Iterator[EgressClient]:
    """The runner's egress client with the runner tests' policy (static names, the upstream's CIDR)."""
    from core.settings import RunnerSettings

    settings = RunnerSettings(env="test", **cast(Any, EGRESS_SETTINGS))
    egress = EgressClient(egress_policy(settings))
    yield egress
    egress.close()


def _get(client: EgressClient, url: str, **kw: Any) -> Any:
    return client.fetch(
        egress=EGRESS,
        method=kw.pop("method", "GET"),
        url=url,
        headers=kw.pop("headers", []),
        body=kw.pop("body", b""),
        timeout_s=kw.pop("timeout_s", 5.0),
    )


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"], ids=["body", "headers"])
def test_a_dripping_upstream_is_cut_at_the_deadline(
    client: EgressClient, upstream_port: int, path: str
) -> None:
    """Each byte arrives well inside httpx's per-read timeout; the whole answer would take ~8 s."""
    started = time.monotonic()
    with pytest.raises(EgressError) as info:
        _get(client, f"http://api.example.test:{upstream_port}{path}", timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert info.value.case == "timeout"
    assert elapsed < 4.0  # cut at ~1 s; uncut it is DRIP_BYTES * DRIP_EVERY_S = 8 s


def test_cross_origin_redirect_drops_credentials(client: EgressClient, upstream_port: int) -> None:
    secret = [
        ("authorization", "Bearer tenant-token"),
        ("cookie", "sid=1"),
        ("x-api-key", "k"),
        ("accept", "a/b"),
    ]
    same = _get(client, f"http://api.example.test:{upstream_port}/to-same/302", headers=secret)
    assert {"authorization", "cookie", "x-api-key", "accept"} <= json.loads(same.body)["headers"].keys()
    other = _get(client, f"http://api.example.test:{upstream_port}/to-other/302", headers=secret)
    seen = json.loads(other.body)["headers"]
    assert other.status == 200 and seen.get("accept") == "a/b"
    assert not {"authorization", "cookie", "x-api-key"} & seen.keys(), seen


@pytest.mark.parametrize("status", [307, 308])
def test_cross_origin_307_308_does_not_resend_the_body(
    client: EgressClient, upstream_port: int, status: int
) -> None:
    base = f"http://api.example.test:{upstream_port}"
    same = _get(client, f"{base}/to-same/{status}", method="POST", body=b"payload")
    assert json.loads(same.body)["body"] == "payload"  # same origin: followed, body kept
    other = _get(client, f"{base}/to-other/{status}", method="POST", body=b"payload")
    # not followed: the guest gets the redirect and decides whether to send its body there
    assert other.status == status
    assert dict(other.headers)["location"] == f"http://redir.example.test:{upstream_port}/echo"
    bodyless = _get(client, f"{base}/to-other/{status}")
    assert bodyless.status == 200 and json.loads(bodyless.body)["body"] == ""


def test_cookies_set_for_one_fetch_never_reach_another(client: EgressClient, upstream_port: int) -> None:
    _get(client, f"http://api.example.test:{upstream_port}/set-cookie")
    seen = json.loads(_get(client, f"http://api.example.test:{upstream_port}/echo").body)["headers"]
    assert "cookie" not in seen


async def test_guest_fetch_of_a_dripping_upstream_ends_with_its_deadline(
    runner_proc: RunnerProcess, egress_guest: str, upstream_port: int
) -> None:
    """Through the runner: the execution's 1.5 s budget bounds the fetch (the guest asks for 3 s)."""
    env = envelope(
        egress_guest,
        "/fetch",
        body=json.dumps({"url": f"http://api.example.test:{upstream_port}/drip"}).encode(),
        granted=CAPS,
        egress=EGRESS,
        limits={"timeout_ms": 1500},
    )
    started = time.monotonic()
    async with runner_proc.client() as http:
        resp = await http.post("/v1/execute", json=env)
    elapsed = time.monotonic() - started
    assert resp.status_code in (200, 504), resp.text  # the guest's 502 answer, or the deadline itself
    assert elapsed < 5.0  # uncut the upstream takes 8 s
