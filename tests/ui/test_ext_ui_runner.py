"""The runner's `GET /ext-ui/{name}/{hash}/{path}` over its ASGI app (no services needed: the route reads
only the blob store): auth, hash format, name binding, path sanitizing, SPA fallback, content types,
ETag/304 and the security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bundles.blobstore import FilesystemBlobStore
from core.settings import RunnerSettings
from runner import InMemoryDebugSink, create_app
from runner._ui import IMMUTABLE, clean_path, frame_ancestors, ui_csp
from tests.gateway.conftest import GWGUEST
from tests.ui.conftest import INDEX, UI_FILES, pack_ui_bundle, store, ui_manifest

AUTH = "ext-ui-tests-runner-auth-0123456789"
GATEWAY = "http://gateway.test:8443"
NAME = "com.acme.ui"


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    settings = RunnerSettings(env="test", data_dir=tmp_path, runner_auth=AUTH, gateway_url=GATEWAY + "/x")
    app = create_app(settings, sink=InMemoryDebugSink(), blobs=FilesystemBlobStore(tmp_path / "blobs"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://runner", headers={"x-runner-auth": AUTH}
    ) as c:
        yield c, tmp_path


@pytest.fixture
def bundle(runner: tuple[httpx.AsyncClient, Path], tmp_path: Path) -> str:
    return store(runner[1], pack_ui_bundle(tmp_path, ui_manifest(NAME), GWGUEST, UI_FILES)[0])


async def test_serves_files_with_types_and_immutable_headers(
    runner: tuple[httpx.AsyncClient, Path], bundle: str
) -> None:
    client = runner[0]
    cases = {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "css/site.css": "text/css; charset=utf-8",
        "img/logo.svg": "image/svg+xml",
        "data.bin": "application/octet-stream",
    }
    for path, ctype in cases.items():
        resp = await client.get(f"/ext-ui/{NAME}/{bundle}/{path}")
        assert resp.status_code == 200, path
        assert resp.content == UI_FILES[path]
        assert resp.headers["content-type"] == ctype
        assert resp.headers["cache-control"] == IMMUTABLE
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["etag"].startswith('"') and resp.headers["etag"].endswith('"')
        assert ("content-security-policy" in resp.headers) == path.endswith(".html")


async def test_html_csp_allows_only_the_gateway_to_frame_and_no_network(
    runner: tuple[httpx.AsyncClient, Path], bundle: str
) -> None:
    resp = await runner[0].get(f"/ext-ui/{NAME}/{bundle}/index.html")
    directives = dict(d.strip().split(" ", 1) for d in resp.headers["content-security-policy"].split(";"))
    assert directives["frame-ancestors"] == GATEWAY
    assert directives["connect-src"] == "'none'"
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"


async def test_etags_differ_per_path_and_if_none_match_gives_304(
    runner: tuple[httpx.AsyncClient, Path], bundle: str
) -> None:
    client = runner[0]
    html = await client.get(f"/ext-ui/{NAME}/{bundle}/index.html")
    js = await client.get(f"/ext-ui/{NAME}/{bundle}/app.js")
    assert html.headers["etag"] != js.headers["etag"]
    for inm in (html.headers["etag"], f'"nope", W/{html.headers["etag"]}', "*"):
        again = await client.get(f"/ext-ui/{NAME}/{bundle}/index.html", headers={"if-none-match": inm})
        assert again.status_code == 304, inm
        assert again.content == b""
        assert again.headers["etag"] == html.headers["etag"]
        assert again.headers["cache-control"] == IMMUTABLE
        assert "frame-ancestors" in again.headers["content-security-policy"]
    stale = await client.get(f"/ext-ui/{NAME}/{bundle}/index.html", headers={"if-none-match": '"other"'})
    assert stale.status_code == 200 and stale.content == INDEX


async def test_spa_fallback_serves_the_entry_page(
    runner: tuple[httpx.AsyncClient, Path], bundle: str
) -> None:
    index = await runner[0].get(f"/ext-ui/{NAME}/{bundle}/index.html")
    for path in ("", "css/", "settings/profile", "missing.js", "img//"):
        resp = await runner[0].get(f"/ext-ui/{NAME}/{bundle}/{path}")
        assert resp.status_code == 200, path
        assert resp.content == INDEX
        assert resp.headers["etag"] == index.headers["etag"]
        assert "content-security-policy" in resp.headers


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/manifest.json",
        "css/%2E%2E/%2e%2e/manifest.json",
        "%2e/index.html",
        ".hidden",
        "css/.secret.css",
        "a%5Cb",
        "a%00b",
        "a%01b",
        "a%7Fb",
        "/etc/passwd",
    ],
)
async def test_unsafe_paths_are_refused(
    runner: tuple[httpx.AsyncClient, Path], bundle: str, path: str
) -> None:
    resp = await runner[0].get(f"/ext-ui/{NAME}/{bundle}/{path}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_path"


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "g" * 64, "0" * 64])
async def test_hash_format_is_checked(runner: tuple[httpx.AsyncClient, Path], bad: str) -> None:
    resp = await runner[0].get(f"/ext-ui/{NAME}/{bad}/index.html")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_content_hash"


async def test_uppercase_hash_is_served_lowercased(
    runner: tuple[httpx.AsyncClient, Path], bundle: str
) -> None:
    resp = await runner[0].get(f"/ext-ui/{NAME}/sha256:{bundle.removeprefix('sha256:').upper()}/app.js")
    assert resp.status_code == 200 and resp.content == UI_FILES["app.js"]


async def test_unknown_hash_other_name_and_no_ui_are_404(
    runner: tuple[httpx.AsyncClient, Path], bundle: str, tmp_path: Path
) -> None:
    client, data_dir = runner
    missing = "sha256:" + "0" * 64
    assert (await client.get(f"/ext-ui/{NAME}/{missing}/index.html")).status_code == 404
    # A hash is bound to its manifest's name: it cannot be served as another extension's UI.
    assert (await client.get(f"/ext-ui/com.acme.other/{bundle}/index.html")).status_code == 404
    no_ui = store(data_dir, pack_ui_bundle(tmp_path, ui_manifest("com.acme.noui"), GWGUEST, None)[0])
    assert (await client.get(f"/ext-ui/com.acme.noui/{no_ui}/index.html")).status_code == 404


async def test_runner_auth_is_required(runner: tuple[httpx.AsyncClient, Path], bundle: str) -> None:
    for headers in ({"x-runner-auth": ""}, {"x-runner-auth": "wrong-secret-0123456789"}):
        resp = await runner[0].get(f"/ext-ui/{NAME}/{bundle}/index.html", headers=headers)
        assert resp.status_code == 401


def test_clean_path() -> None:
    assert clean_path("") == ""
    assert clean_path("a//b.js") == "a/b.js"
    assert clean_path("dir/") == "dir/"
    for bad in ("/a", "..", "a/../b", ".", "a/./b", ".git/config", "a\\b", "a\x00", "a\x7f", "x" * 2000):
        assert clean_path(bad) is None, bad


def test_frame_ancestors_is_the_gateway_origin() -> None:
    assert frame_ancestors("https://gw.example.com:8443/some/path") == "https://gw.example.com:8443"
    assert frame_ancestors("") == "'self'"
    assert "frame-ancestors 'self'" in ui_csp("")
    with pytest.raises(ValueError):
        frame_ancestors("javascript:alert(1)")
