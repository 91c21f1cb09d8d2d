"""`..` in `/ext-ui/{name}/{hash}/{path}` must not reach another route or another hash (issue 11, item 7).

Raw requests on real sockets, to `python -m api.gateway` and `python -m runner` under uvicorn: an HTTP
client library would normalize the dot segments itself before sending, and an in-process ASGI client
skips the server's own parsing, so neither shows what an attacker's bytes do.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.gateway.conftest import RUNNER_AUTH, RunnerProcess, gateway_proc  # noqa: F401  (fixture)
from tests.ui.conftest import UI_FILES, UiRegistry

# Starting `python -m api.gateway` (uvicorn workers) takes up to tens of seconds on busy cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REVOKED_UI = b"<!doctype html><title>revoked</title>REVOKED-VERSION-UI"


async def raw_get(base: str, target: str, *headers: str) -> tuple[int, bytes]:
    """Send `GET target` byte for byte as given; the status and the body of the answer."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"GET {target} HTTP/1.1", "host: test", "connection: close", *headers, "", ""]
        writer.write("\r\n".join(lines).encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# What the red team sent, and its encodings. `{hash}` is the verified version, `{revoked}` another.
TRAVERSALS = [
    "../../../metrics",
    "../../../healthz",
    "../{revoked}/index.html",
    "../../{name}/{revoked}/index.html",
    "css/../../{revoked}/index.html",
    "%2e%2e/%2e%2e/%2e%2e/metrics",
    "%2E%2E/%2E%2E/%2E%2E/metrics",
    "%2E./%2e./.%2e/metrics",
    "%252e%252e/%252e%252e/%252e%252e/metrics",
    "%25252e%25252e/%25252e%25252e/metrics",
    "..%2f..%2f..%2fmetrics",
    "..%252f..%252f..%252fmetrics",
    "..%5c..%5c..%5cmetrics",
    "..\\..\\..\\metrics",
    "./index.html",
    "%2e/index.html",
    "css//site.css",
    "/index.html",
    ".hidden",
]


@pytest.fixture
async def versions(ui_registry: UiRegistry) -> tuple[str, str, str]:
    name = f"com.acme.trav{uuid.uuid4().hex[:8]}"
    good, _ = await ui_registry.publish_ui(name)
    revoked, version_id = await ui_registry.publish_ui(name, files={**UI_FILES, "index.html": REVOKED_UI})
    assert version_id is not None
    await ui_registry.revoke(version_id)
    return name, good, revoked


async def test_gateway_refuses_traversal_before_forwarding(
    gateway_proc: str,  # noqa: F811
    versions: tuple[str, str, str],
) -> None:
    name, good, revoked = versions
    leaked = []
    for rest in TRAVERSALS:
        target = f"/ext-ui/{name}/{good}/" + rest.format(name=name, revoked=revoked)
        status, body = await raw_get(gateway_proc, target)
        refused = status == 400 and b'"error":"invalid_path"' in body.replace(b" ", b"")
        if not refused or b"REVOKED-VERSION-UI" in body or b"# HELP" in body or b'"status"' in body:
            leaked.append((rest, status, body[:120]))
    assert leaked == []


async def test_gateway_still_serves_plain_asset_paths(
    gateway_proc: str,  # noqa: F811
    versions: tuple[str, str, str],
) -> None:
    name, good, revoked = versions
    for rest, expected in [
        ("index.html", UI_FILES["index.html"]),
        ("", UI_FILES["index.html"]),
        ("css/site.css", UI_FILES["css/site.css"]),
        ("css/", UI_FILES["index.html"]),  # a directory: the entry page (SPA fallback)
        ("img/logo%2Esvg", UI_FILES["img/logo.svg"]),  # an encoded dot inside a name is no traversal
    ]:
        status, body = await raw_get(gateway_proc, f"/ext-ui/{name}/{good}/{rest}")
        assert (status, body) == (200, expected), rest
    status, _ = await raw_get(gateway_proc, f"/ext-ui/{name}/{revoked}/index.html")
    assert status == 404  # the revoked version itself stays unreachable


RUNNER_TRAVERSALS = [
    "%252e%252e/%252e%252e/metrics",
    "%252E./index.html",
    "css/%252e%252e/x",
    "..%252f..%252fmetrics",
    "a%255cb",
    "%25252e%25252e/x",
]


async def test_runner_refuses_what_decodes_to_traversal(
    shared_runner: RunnerProcess, versions: tuple[str, str, str]
) -> None:
    """Defence in depth: a request that reaches the runner's route directly (or through a gateway that
    forgot to check) with a segment that becomes `..` (or a slash) on a further decoding is refused."""
    name, good, _ = versions
    served = []
    for rest in RUNNER_TRAVERSALS:
        status, body = await raw_get(
            shared_runner.url, f"/ext-ui/{name}/{good}/{rest}", f"x-runner-auth: {RUNNER_AUTH}"
        )
        if status != 400 or b"invalid_path" not in body:
            served.append((rest, status))
    assert served == []
