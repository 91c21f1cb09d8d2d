"""Helpers of the runner tests: guest builds (cached), bundles in the runner's blob store, registry rows,
envelopes, and a real `python -m runner` process."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bundles.blobstore import FilesystemBlobStore, artifact_key, bundle_key
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from core.crypto import Keyring, encrypt_secrets, new_data_key, wrap_data_key
from runner.compile import engine_fingerprint, precompile

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GUESTS = Path(__file__).resolve().parent / "guests"
ARTIFACTS = ROOT / "tests" / ".artifacts" / "guests"
AUTH = "test-runner-auth-" + "x" * 16

# Names an egress test can use; resolution is static (EXT_EGRESS_RESOLVE), the checks are the real ones.
UPSTREAM_IP = "127.0.0.2"
EGRESS_SETTINGS = {
    "egress_allow_http": True,
    "egress_allow": [
        "api.example.test",
        "loopback.example.test",
        "metadata.example.test",
        "redir.example.test",
    ],
    "egress_allow_cidrs": [f"{UPSTREAM_IP}/32"],
    "egress_resolve": {
        "api.example.test": UPSTREAM_IP,
        "redir.example.test": UPSTREAM_IP,
        "other.example.test": UPSTREAM_IP,
        "loopback.example.test": "127.0.0.1",
        "metadata.example.test": "169.254.169.254",
    },
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # xdist workers build each guest once, the others wait
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tree_hash(*dirs: Path) -> str:
    h = hashlib.sha256()
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and "dist" not in p.parts:
                h.update(str(p.relative_to(ROOT)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def python_guest(app_dir: Path) -> tuple[bytes, bytes]:
    """Build (or reuse) a Python guest; returns (component, precompiled artifact for this engine)."""
    spec = importlib.util.spec_from_file_location("extplane_sdk_build", ROOT / "sdk" / "python" / "build.py")
    assert spec is not None and spec.loader is not None
    builder: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    key = _tree_hash(app_dir, ROOT / "sdk" / "python", ROOT / "schema" / "wit")
    wasm_path = ARTIFACTS / f"{app_dir.name}-{key}.wasm"
    cwasm_path = ARTIFACTS / f"{app_dir.name}-{key}-{engine_fingerprint()}.cwasm"
    with _locked(ARTIFACTS / f"{app_dir.name}.lock"):
        if not wasm_path.exists():
            builder.build(app_dir, wasm_path)
        if not cwasm_path.exists():
            tmp = cwasm_path.with_suffix(".tmp")
            tmp.write_bytes(precompile(wasm_path.read_bytes()))
            tmp.replace(cwasm_path)
    return wasm_path.read_bytes(), cwasm_path.read_bytes()


def manifest(name: str = "com.test.guest", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "publisher": "test",
        "version": "1.0.0",
        "runtime": "wasm-component@1",
    }
    doc.update(extra)
    return doc


def _bundle_bytes(wasm: bytes, name: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return _pack(wasm, manifest(name=name), Path(tmp))


def _pack(wasm: bytes, manifest_doc: dict[str, Any], work: Path) -> bytes:
    src = work / f"ext-{uuid.uuid4().hex[:8]}"
    (src / "dist").mkdir(parents=True)
    (src / "manifest.json").write_text(json.dumps(manifest_doc))
    (src / "dist" / "main.wasm").write_bytes(wasm)
    data = pack_directory(src)
    shutil.rmtree(src)
    return data


# What the publish workflow would record in bundles.precompiled, by content hash, for the bundles
# publish() stored with an artifact: envelope() sends it (as the gateway does) unless told otherwise.
_PRECOMPILED: dict[str, dict[str, dict[str, Any]]] = {}


def precompiled_record(chash: str) -> dict[str, dict[str, Any]]:
    """The `bundles.precompiled` value for a bundle publish() stored (empty without an artifact)."""
    return _PRECOMPILED.get(chash, {})


def artifact_digests(chash: str) -> dict[str, dict[str, Any]]:
    """The envelope's `artifacts` for a bundle publish() stored: the record without the blob key."""
    return {fp: {"sha256": r["sha256"], "size": r["size"]} for fp, r in precompiled_record(chash).items()}


def publish(
    data_dir: Path, wasm: bytes, manifest_doc: dict[str, Any], work: Path, *, artifact: bytes | None = None
) -> str:
    """Pack a bundle into the runner's blob store (plus its precompiled artifact); returns the hash."""
    data = _pack(wasm, manifest_doc, work)
    h = content_hash(data)
    store = FilesystemBlobStore(data_dir / "blobs")
    store.put(bundle_key(h), data)
    if artifact is not None:
        key = artifact_key(h, engine_fingerprint())
        store.put(key, artifact)
        record = {"key": key, "sha256": hashlib.sha256(artifact).hexdigest(), "size": len(artifact)}
        _PRECOMPILED[h] = {engine_fingerprint(): record}
    return h


async def create_install(db_url: str, chash: str, *, tenant: str, extension: str) -> str:
    """Registry rows an install needs (storage_records references installs); returns the install id."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO trust_keys (key_id, publisher, public_key_pem)"
            " VALUES ('ed25519:test', 'test', 'pem') ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO bundles"
            " (content_hash, size_bytes, storage_key, signature, signer_key_id, verified_at)"
            " VALUES ($1, 1, 'k', 'sig', 'ed25519:test', now()) ON CONFLICT DO NOTHING",
            chash,
        )
        ext_id = await conn.fetchval(
            "INSERT INTO extensions (name, publisher) VALUES ($1, 'test')"
            " ON CONFLICT (name) DO UPDATE SET publisher = EXCLUDED.publisher RETURNING id",
            extension,
        )
        version_id = await conn.fetchval(
            "INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id)"
            " VALUES ($1, '1.0.0', $2, '{}'::jsonb, 'wf')"
            " ON CONFLICT (extension_id, version) DO UPDATE SET manifest = EXCLUDED.manifest RETURNING id",
            ext_id,
            chash,
        )
        install_id = await conn.fetchval(
            "INSERT INTO installs (tenant_id, extension_id, version_id, status) VALUES ($1, $2, $3, 'active')"
            " RETURNING id",
            tenant,
            ext_id,
            version_id,
        )
        return str(install_id)
    finally:
        await conn.close()


def sealed_secrets(
    keyring: Keyring, install_id: str, values: dict[str, str], version: int = 1
) -> dict[str, Any]:
    data_key = new_data_key()
    wrapped, master_version = wrap_data_key(keyring, data_key, install_id=install_id)
    ct, nonce = encrypt_secrets(data_key, values, install_id=install_id, secrets_version=version)
    return {
        "install_id": install_id,
        "secrets_version": version,
        "ciphertext_b64": base64.b64encode(ct).decode(),
        "nonce_b64": base64.b64encode(nonce).decode(),
        "wrapped_key_b64": base64.b64encode(wrapped).decode(),
        "master_key_version": master_version,
    }


def envelope(
    chash: str,
    path: str,
    *,
    method: str = "POST",
    body: bytes = b"",
    query: str = "",
    install_id: str | None = None,
    tenant: str = "tenant-a",
    extension: str = "com.test.guest",
    granted: list[str] | None = None,
    limits: dict[str, Any] | None = None,
    egress: list[str] | None = None,
    config: dict[str, str] | None = None,
    secrets_doc: dict[str, Any] | None = None,
    user: dict[str, str] | None = None,
    artifacts: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An execute envelope; `artifacts` defaults to the digests publish() recorded for `chash`."""
    return {
        "context": {
            "tenant_id": tenant,
            "extension": extension,
            "install_id": install_id or str(uuid.uuid4()),
            "version": "1.0.0",
            "content_hash": chash,
            "request_id": f"req-{uuid.uuid4().hex[:12]}",
            "config": config or {},
        },
        "request": {
            "method": method,
            "path": path,
            "query": query,
            "headers": [["x-test", "1"]],
            "body_b64": base64.b64encode(body).decode(),
        },
        "limits": limits or {},
        "capabilities": {"granted": granted or []},
        "egress": egress or [],
        "secrets": secrets_doc,
        "user": user,
        "artifacts": artifact_digests(chash) if artifacts is None else artifacts,
    }


@dataclass
class RunnerProcess:
    url: str
    data_dir: Path
    keyring: Keyring
    proc: subprocess.Popen[bytes]
    log_path: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"x-runner-auth": AUTH}, timeout=60)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_runner(work: Path, db_url: str, **settings: Any) -> RunnerProcess:
    """Start `python -m runner` on a free port and wait until /healthz answers."""
    port = free_port()
    data_dir = work / f"runner-{port}"
    data_dir.mkdir(parents=True)
    keyring = Keyring.parse(Keyring.generate_entry(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    env.update(
        {
            "EXT_ENV": "test",
            "EXT_HOST": "127.0.0.1",
            "EXT_PORT": str(port),
            "EXT_DATA_DIR": str(data_dir),
            "EXT_DATABASE_URL": db_url,
            "EXT_RUNNER_AUTH": AUTH,
            "EXT_MASTER_KEYS": ",".join(
                f"{v}:{base64.b64encode(k).decode()}" for v, k in keyring.keys.items()
            ),
            "EXT_LOG_FORMAT": "json",
            "EXT_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
    )
    for key, value in settings.items():
        env[f"EXT_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    log_path = data_dir / "runner.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    runner = RunnerProcess(f"http://127.0.0.1:{port}", data_dir, keyring, proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runner exited early ({proc.returncode}):\n{runner.logs()}")
        try:
            if httpx.get(f"{runner.url}/healthz", timeout=1).status_code == 200:
                return runner
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    runner.stop()
    raise RuntimeError(f"runner did not become healthy:\n{runner.logs()}")


@contextmanager
def in_process_runtime() -> Iterator[Any]:
    """A runner Runtime in this process, linked without storage or secrets keys (egress default)."""
    from core.settings import RunnerSettings
    from runner._egress import EgressClient
    from runner._engine import Runtime
    from runner._host import HostServices
    from runner._secrets import SecretsCache
    from runner._services import egress_policy

    settings = RunnerSettings(env="test", data_dir=Path("/nonexistent"))
    rt = Runtime(settings)
    rt.link(
        HostServices(
            secrets=SecretsCache(None, entries=4),
            storage=None,
            egress=EgressClient(egress_policy(settings)),
            on_denied=lambda _cap: None,
        )
    )
    try:
        yield rt
    finally:
        rt.close()
