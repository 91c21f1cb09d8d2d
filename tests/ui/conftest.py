"""UI tests: bundles with a `ui/` tree, registry rows by SQL (as in tests/gateway), the real runner and
gateway. The gateway suite's fixtures (shared runner, in-process gateway) are reused as they are."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bundles.blobstore import FilesystemBlobStore, bundle_key
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from tests.gateway.conftest import (  # noqa: F401  (fixtures re-exported for this directory)
    ENDPOINTS,
    GWGUEST,
    Registry,
    gateway,
    gateway_factory,
    runner_data_dir,
    shared_runner,
)

INDEX = b"<!doctype html><html><head><script src='app.js'></script></head><body>ui</body></html>"
UI_FILES = {
    "index.html": INDEX,
    "app.js": b"console.log('app');",
    "css/site.css": b"body { color: red }",
    "img/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "data.bin": b"\x00\x01",
}


def ui_manifest(
    name: str, *, version: str = "1.0.0", endpoints: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "publisher": "acme",
        "version": version,
        "runtime": "wasm-component@1",
        "capabilities": ["cap:ui.proxy"],
        "api": {"endpoints": [{"method": m, "path": p} for m, p in (endpoints or ENDPOINTS)]},
        "ui": {"type": "iframe", "entry": "ui/index.html"},
    }


def pack_ui_bundle(
    tmp: Path, manifest: dict[str, Any], wasm: bytes, files: dict[str, bytes] | None
) -> tuple[bytes, dict[str, Any]]:
    """A real bundle (bundles.pack) with `files` under ui/, and its manifest (without `ui` and
    cap:ui.proxy when there are no files)."""
    src = tmp / f"src-{uuid.uuid4().hex[:8]}"
    (src / "dist").mkdir(parents=True)
    doc = dict(manifest)
    if not files:
        doc.pop("ui", None)
        doc["capabilities"] = [c for c in doc.get("capabilities", []) if c != "cap:ui.proxy"]
    for rel, body in (files or {}).items():
        path = src / "ui" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    (src / "manifest.json").write_text(json.dumps(doc))
    (src / "dist" / "main.wasm").write_bytes(wasm)
    return pack_directory(src), doc


def store(data_dir: Path, data: bytes) -> str:
    digest = content_hash(data)
    FilesystemBlobStore(data_dir / "blobs").put(bundle_key(digest), data)
    return digest


@dataclass
class UiInstall:
    tenant_id: str
    extension: str
    content_hash: str
    version_id: str
    install_id: str | None


class UiRegistry(Registry):
    async def publish_ui(
        self,
        extension: str,
        *,
        files: dict[str, bytes] | None = None,
        wasm: bytes = GWGUEST,
        manifest: dict[str, Any] | None = None,
        register: bool = True,
        version_status: str = "verified",
    ) -> tuple[str, str | None]:
        """Store a UI bundle; with `register`, also its bundles/versions rows. -> (hash, version id)."""
        doc = manifest or ui_manifest(extension)
        data, doc = pack_ui_bundle(self.tmp, doc, wasm, UI_FILES if files is None else files)
        digest = store(self.data_dir, data)
        if not register:
            return digest, None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO trust_keys (key_id, publisher, public_key_pem)
                   VALUES ('ed25519:test', 'acme', 'x') ON CONFLICT DO NOTHING"""
            )
            await conn.execute(
                """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                      verified_at)
                   VALUES ($1, 1, $2, 'sig', 'ed25519:test', now()) ON CONFLICT DO NOTHING""",
                digest,
                bundle_key(digest),
            )
            ext_id = await conn.fetchval(
                """INSERT INTO extensions (name, publisher) VALUES ($1, 'acme')
                   ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id""",
                extension,
            )
            version_id = await conn.fetchval(
                """INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id,
                                         status)
                   VALUES ($1, $2, $3, $4, 'publish/test', $5) RETURNING id""",
                ext_id,
                f"1.0.{uuid.uuid4().int % 100000}",
                digest,
                doc,
                version_status,
            )
            for endpoint in doc.get("api", {}).get("endpoints", []):
                await conn.execute(
                    "INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)",
                    version_id,
                    endpoint["method"],
                    endpoint["path"],
                )
        return digest, str(version_id)

    async def install_ui(
        self,
        tenant_id: str,
        extension: str,
        *,
        caps: tuple[str, ...] = ("cap:ui.proxy",),
        files: dict[str, bytes] | None = None,
        wasm: bytes = GWGUEST,
        manifest: dict[str, Any] | None = None,
    ) -> UiInstall:
        digest, version_id = await self.publish_ui(extension, files=files, wasm=wasm, manifest=manifest)
        assert version_id is not None
        install_id = await self.pool.fetchval(
            """INSERT INTO installs (tenant_id, extension_id, version_id, status, granted_capabilities)
               SELECT $1, extension_id, id, 'active', $3 FROM versions WHERE id = $2 RETURNING id""",
            tenant_id,
            uuid.UUID(version_id),
            list(caps),
        )
        return UiInstall(tenant_id, extension, digest, version_id, str(install_id))

    async def revoke(self, version_id: str) -> None:
        await self.pool.execute(
            "UPDATE versions SET status = 'revoked', revoked_at = now() WHERE id = $1", uuid.UUID(version_id)
        )


@pytest.fixture
async def ui_registry(db_pool: asyncpg.Pool, runner_data_dir: Path, tmp_path: Path) -> UiRegistry:  # noqa: F811
    return UiRegistry(db_pool, runner_data_dir, tmp_path)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Browser fixtures read `item.ui_failed` at teardown to save a screenshot of a failed test.
    report = yield
    if report.failed:
        item.ui_failed = True  # type: ignore[attr-defined]
    return report
