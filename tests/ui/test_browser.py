"""The hello sample's UI in headless Debian Chromium, against real gateway and runner processes.

One stack per module (a migrated database, the runner with the built hello component, the gateway on
a free port); a fresh browser context per test. A failed test leaves a screenshot in
tests/.artifacts/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Frame, Page, async_playwright

from api.auth import token_hash
from bundles.blobstore import FilesystemBlobStore, artifact_key, bundle_key
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from runner import engine_fingerprint
from tests.gateway.conftest import ADMIN_TOKEN, MASTER_KEYS, RUNNER_AUTH, RunnerProcess, free_port, wait_http
from tests.runner.runner_helpers import python_guest
from tests.ui.browser_support import ARGS, ensure_chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
NAME = "com.extplane.hello"
SCREENSHOTS = ROOT / "tests" / ".artifacts" / "screenshots"
WAIT_MS = 15_000


@dataclass
class Stack:
    gateway: str
    tenant: str
    token: str
    content_hash: str

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway, headers={"authorization": f"Bearer {self.token}"}, timeout=30
        )

    def counter(self) -> int:
        with self.api() as client:
            resp = client.get(f"/api/ext/{NAME}/counter")
        assert resp.status_code == 200, resp.text
        return int(resp.json()["counter"])


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="module")
async def ui_db(template_db_url: str, database_server_url: str) -> AsyncIterator[str]:
    name = f"extplane_ui_{uuid.uuid4().hex[:12]}"
    template = urlsplit(template_db_url).path.lstrip("/")
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    yield _with_db(database_server_url, name)
    admin = await asyncpg.connect(_with_db(database_server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _hello_bundle(work: Path) -> tuple[bytes, bytes, dict[str, Any]]:
    """The hello sample as `extctl bundle pack` makes it (manifest, ui/, dist/main.wasm) + its artifact."""
    wasm, artifact = python_guest(HELLO)
    src = work / "hello"
    shutil.copytree(HELLO / "ui", src / "ui")
    shutil.copy(HELLO / "manifest.json", src / "manifest.json")
    (src / "dist").mkdir()
    (src / "dist" / "main.wasm").write_bytes(wasm)
    return pack_directory(src), artifact, json.loads((HELLO / "manifest.json").read_text())


async def _register(
    db_url: str, digest: str, manifest: dict[str, Any], tenant: str, precompiled: dict[str, Any]
) -> str:
    """Registry rows as publish + install would leave them; returns a tenant token."""
    token = "ext_" + uuid.uuid4().hex
    conn = await asyncpg.connect(db_url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO trust_keys (key_id, publisher, public_key_pem)
                   VALUES ('ed25519:t', 'extplane', 'x')"""
            )
            await conn.execute(
                """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                        verified_at, precompiled)
                   VALUES ($1, 1, $2, 'sig', 'ed25519:t', now(), $3)""",
                digest,
                bundle_key(digest),
                precompiled,
            )
            ext_id = await conn.fetchval(
                "INSERT INTO extensions (name, publisher) VALUES ($1, 'extplane') RETURNING id", NAME
            )
            version_id = await conn.fetchval(
                """INSERT INTO versions (extension_id, version, content_hash, manifest, capabilities,
                                         publish_workflow_id)
                   VALUES ($1, $2, $3, $4, $5, 'publish/test') RETURNING id""",
                ext_id,
                manifest["version"],
                digest,
                manifest,
                manifest["capabilities"],
            )
            for endpoint in manifest["api"]["endpoints"]:
                await conn.execute(
                    "INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)",
                    version_id,
                    endpoint["method"],
                    endpoint["path"],
                )
            await conn.execute(
                """INSERT INTO installs (tenant_id, extension_id, version_id, status, granted_capabilities)
                   VALUES ($1, $2, $3, 'active', $4)""",
                tenant,
                ext_id,
                version_id,
                manifest["capabilities"],
            )
            await conn.execute(
                "INSERT INTO api_tokens (token_hash, tenant_id, scopes) VALUES ($1, $2, $3)",
                token_hash(token),
                tenant,
                ["ext:read", "ext:write"],
            )
    finally:
        await conn.close()
    return token


@pytest.fixture(scope="module")
async def stack(
    ui_db: str, worker_id_num: int, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    work = tmp_path_factory.mktemp("ui-browser")
    data, artifact, manifest = _hello_bundle(work)
    digest = content_hash(data)
    blobs = FilesystemBlobStore(work / "blobs")
    blobs.put(bundle_key(digest), data)
    akey = artifact_key(digest, engine_fingerprint())
    blobs.put(akey, artifact)
    # As the publish workflow records it: the runner deserializes the artifact only against this.
    precompiled = {
        engine_fingerprint(): {
            "key": akey,
            "sha256": hashlib.sha256(artifact).hexdigest(),
            "size": len(artifact),
        }
    }
    tenant = f"browser-{uuid.uuid4().hex[:8]}"
    token = await _register(ui_db, digest, manifest, tenant, precompiled)

    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    runner = RunnerProcess(work, ui_db, EXT_GATEWAY_URL=gateway_url, EXT_MASTER_KEYS=MASTER_KEYS)
    runner.start()
    redis = urlsplit(os.environ["EXT_TEST_REDIS_URL"])._replace(path=f"/{1 + worker_id_num}")
    env = {
        **os.environ,
        "EXT_ENV": "test",
        "EXT_DATABASE_URL": ui_db,
        "EXT_REDIS_URL": urlunsplit(redis),
        "EXT_RUNNER_URL": runner.url,
        "EXT_RUNNER_AUTH": RUNNER_AUTH,
        "EXT_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXT_LOG_LEVEL": "warning",
    }
    gateway = subprocess.Popen(
        [sys.executable, "-m", "api.gateway", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(gateway_url + "/healthz", proc=gateway)
        yield Stack(gateway=gateway_url, tenant=tenant, token=token, content_hash=digest)
    finally:
        gateway.terminate()
        try:
            gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
        runner.kill()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = ensure_chromium()
    async with async_playwright() as pw:
        # Playwright adds --headless and a fresh temporary --user-data-dir per launch.
        chromium = await pw.chromium.launch(executable_path=str(executable), headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(WAIT_MS)
    tab = await context.new_page()
    console: list[str] = []
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    tab.console_log = console  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        if getattr(request.node, "ui_failed", False):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"{request.node.name}.png"
            await tab.screenshot(path=str(shot), full_page=True)
            (shot.with_suffix(".console.txt")).write_text("\n".join(console))
        await context.close()


async def open_host_page(page: Page, stack: Stack) -> Frame:
    """Sign in with a ticket link (-> session cookie -> clean URL) and wait for the UI's first answer."""
    with stack.api() as client:
        ticket = client.post(f"/ext/{NAME}/ticket")
    assert ticket.status_code == 200, ticket.text
    await page.goto(stack.gateway + ticket.json()["url"])
    assert page.url == f"{stack.gateway}/ext/{NAME}"
    await page.wait_for_selector("iframe")
    frame = next(f for f in page.frames if "/ext-ui/" in f.url)
    # Predicates as functions: a string predicate is eval'd in the page, which the UI's CSP forbids.
    await frame.wait_for_function("() => document.getElementById('counter').textContent !== '…'")
    return frame


async def test_host_page_ui_calls_its_handler_through_the_bridge(page: Page, stack: Stack) -> None:
    frame = await open_host_page(page, stack)
    iframe = page.locator("iframe")
    assert await iframe.get_attribute("sandbox") == "allow-scripts"
    src = await iframe.get_attribute("src") or ""
    assert src.startswith(f"{stack.gateway}/ext-ui/{NAME}/{stack.content_hash}/index.html?")
    before = int(await frame.inner_text("#counter"))
    assert before == stack.counter()
    await frame.click("#increment")
    await frame.wait_for_function(
        "(n) => document.getElementById('counter').textContent === n", arg=str(before + 1)
    )
    assert stack.counter() == before + 1
    assert await frame.inner_text("#status") == ""
    # The bootstrap carried the tenant; the UI reported its size (clamped to 100..4000 px).
    assert await frame.inner_text("#tenant") == stack.tenant
    await page.wait_for_function("() => window.extplaneHost.stats.height !== null")
    height = await page.evaluate("window.extplaneHost.stats.height")
    assert 100 <= height <= 4000
    assert await page.evaluate("window.extplaneHost.stats.relayed") >= 2


async def test_messages_not_from_the_iframe_are_ignored(page: Page, stack: Stack) -> None:
    await open_host_page(page, stack)
    before = stack.counter()
    stats_before = await page.evaluate("({...window.extplaneHost.stats})")
    await page.evaluate(
        """() => {
          const bump = {extplane: 1, type: 'apiproxy', request_id: 'forged',
                        payload: {route: '/counter', method: 'POST'}};
          // The right iframe as source, but a foreign origin (as if the frame had navigated away).
          window.dispatchEvent(new MessageEvent('message', {
            data: bump, origin: 'https://evil.example',
            source: document.querySelector('iframe').contentWindow}));
          // A real message of the host's own origin, whose source is not the iframe.
          window.postMessage(bump, '*');
          // The right source and origin, but not the protocol's envelope.
          window.dispatchEvent(new MessageEvent('message', {
            data: {...bump, extplane: 2}, origin: 'null',
            source: document.querySelector('iframe').contentWindow}));
        }"""
    )
    await page.wait_for_function(
        "(n) => window.extplaneHost.stats.ignored >= n", arg=stats_before["ignored"] + 3
    )
    assert await page.evaluate("window.extplaneHost.stats.relayed") == stats_before["relayed"]
    assert stack.counter() == before


async def test_the_iframe_cannot_reach_the_network_or_its_host(page: Page, stack: Stack) -> None:
    frame = await open_host_page(page, stack)
    before = stack.counter()
    outcome = await frame.evaluate(
        """async (urls) => {
          const violations = [];
          document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective));
          const results = [];
          for (const url of urls) {
            try { await fetch(url, {method: 'POST'}); results.push('fetched'); }
            catch (e) { results.push('blocked'); }
          }
          await new Promise((r) => setTimeout(r, 0));
          let parentDocument;
          try { parentDocument = window.parent.document.title; } catch (e) { parentDocument = 'blocked'; }
          return {results, violations, parentDocument, cookie: (() => {
            try { return document.cookie; } catch (e) { return 'blocked'; } })()};
        }""",
        [f"/api/ext/{NAME}/counter", f"{stack.gateway}/api/ext-proxy/{NAME}/counter"],
    )
    assert outcome["results"] == ["blocked", "blocked"]
    assert outcome["violations"].count("connect-src") == 2
    assert outcome["parentDocument"] == "blocked"
    assert outcome["cookie"] in ("", "blocked")
    assert stack.counter() == before


async def test_only_the_gateway_origin_may_frame_the_ui(page: Page, stack: Stack) -> None:
    # localhost and 127.0.0.1 are different origins: a page on the former may not frame the UI.
    port = urlsplit(stack.gateway).port
    await page.goto(f"http://localhost:{port}/healthz")
    async with page.expect_console_message(lambda m: "frame-ancestors" in m.text) as refused:
        await page.evaluate(
            """(src) => { const f = document.createElement('iframe'); f.src = src;
                          document.body.appendChild(f); }""",
            f"{stack.gateway}/ext-ui/{NAME}/{stack.content_hash}/index.html",
        )
    assert stack.gateway in (await refused.value).text
