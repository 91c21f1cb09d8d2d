"""Gateway tests: the real gateway app, the real runner process, real Postgres and Redis.

Registry state is written by SQL (the workflows that normally write it are not under test here); the
bundles go into a FilesystemBlobStore under a data dir shared with the runner process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.auth import token_hash as hash_token
from api.gateway.app import GatewayApp, create_app
from bundles.blobstore import FilesystemBlobStore, bundle_key
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from core.crypto import Keyring, encrypt_secrets, new_data_key, unwrap_data_key, wrap_data_key
from core.settings import ApiSettings
from schema.payloads.notify import INVALIDATE_CHANNEL
from tests.support.polling import eventually as eventually  # re-exported: tests import it from here

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
GWGUEST = (FIXTURES / "gwguest.wasm").read_bytes()
ECHO = (ROOT / "tests" / "runner" / "fixtures" / "echo.wasm").read_bytes()
HOSTILE = (ROOT / "tests" / "runner" / "fixtures" / "hostile.wasm").read_bytes()
# The keyring the shared runner unwraps secrets with (the worker's, in a real deployment).
MASTER_KEYS = Keyring.generate_entry(1)
RUNNER_AUTH = "gateway-tests-runner-auth-0123456789"
ADMIN_TOKEN = "gateway-tests-admin-token-0123456789"
ENDPOINTS = [
    ("GET", "/reflect/status"),
    ("POST", "/reflect/items/:id"),
    ("PUT", "/reflect/items/:id"),
    ("DELETE", "/reflect/items/:id"),
    ("GET", "/teapot"),
    ("GET", "/loop"),
    ("GET", "/trap"),
    ("GET", "/"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, *, deadline_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not healthy within {deadline_s}s")


class RunnerProcess:
    """`python -m runner` on a fixed port (restartable on the same port) over `data_dir`."""

    def __init__(self, data_dir: Path, database_url: str, **env: str) -> None:
        self.extra_env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The framed hop (schema.runner_frames) on a second port; both serve the same executions.
        self.frame_port = free_port()
        self.frame_url = f"frame://127.0.0.1:{self.frame_port}"
        self.data_dir = data_dir
        self.database_url = database_url
        self.proc: subprocess.Popen[bytes] | None = None

    def hop_url(self, hop: str) -> str:
        """The URL a gateway lists for this runner over `hop` ("http" or "frame")."""
        return self.frame_url if hop == "frame" else self.url

    def start(self) -> None:
        env = {
            **os.environ,
            "EXT_ENV": "test",
            "EXT_HOST": "127.0.0.1",
            "EXT_PORT": str(self.port),
            "EXT_FRAME_PORT": str(self.frame_port),
            "EXT_DATA_DIR": str(self.data_dir),
            "EXT_DATABASE_URL": self.database_url,
            "EXT_RUNNER_AUTH": RUNNER_AUTH,
            "EXT_LOG_LEVEL": "warning",
            "EXT_THREADS": "2",
            **self.extra_env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(self.url + "/healthz", proc=self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def runner_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gw-runner-data")


@pytest.fixture(scope="session")
def shared_runner(runner_data_dir: Path, database_server_url: str) -> Iterator[RunnerProcess]:
    """One runner per xdist worker for tests that do not stop it. Fuel is plentiful here so that a
    looping guest meets its epoch deadline (-> 504); test_proxy checks fuel exhaustion separately."""
    runner = RunnerProcess(
        runner_data_dir, database_server_url, EXT_FUEL_PER_MS="1000000000", EXT_MASTER_KEYS=MASTER_KEYS
    )
    runner.start()
    yield runner
    runner.kill()


def store_bundle(data_dir: Path, wasm: bytes, name: str, tmp: Path) -> str:
    src = tmp / f"src-{uuid.uuid4().hex[:8]}"
    (src / "dist").mkdir(parents=True)
    manifest = {
        "name": name,
        "publisher": "acme",
        "version": "1.0.0",
        "runtime": "wasm-component@1",
        "api": {"endpoints": [{"method": m, "path": p} for m, p in ENDPOINTS]},
    }
    (src / "manifest.json").write_text(json.dumps(manifest))
    (src / "dist" / "main.wasm").write_bytes(wasm)
    data = pack_directory(src)
    digest = content_hash(data)
    FilesystemBlobStore(data_dir / "blobs").put(bundle_key(digest), data)
    return digest


@dataclass
class Install:
    install_id: str
    tenant_id: str
    extension: str
    revision: int = 1


class Registry:
    """Registry rows by SQL, as the install workflows would leave them."""

    def __init__(self, pool: asyncpg.Pool, data_dir: Path, tmp: Path) -> None:
        self.pool = pool
        self.data_dir = data_dir
        self.tmp = tmp
        self._hashes: dict[bytes, str] = {}

    async def install(
        self,
        tenant_id: str,
        extension: str,
        *,
        wasm: bytes = GWGUEST,
        endpoints: list[tuple[str, str]] | None = None,
        timeout_ms: int = 5000,
        rps: float | None = None,
        burst: int | None = None,
        status: str = "active",
        config: dict[str, Any] | None = None,
        precompiled: Callable[[str], dict[str, Any]] | None = None,
    ) -> Install:
        """Rows for an active install; `precompiled(content_hash)` gives `bundles.precompiled`."""
        digest = store_bundle(self.data_dir, wasm, extension, self.tmp)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO trust_keys (key_id, publisher, public_key_pem)
                   VALUES ('ed25519:test', 'acme', 'x') ON CONFLICT DO NOTHING"""
            )
            await conn.execute(
                """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature, signer_key_id,
                                      verified_at, precompiled)
                   VALUES ($1, 1, $2, 'sig', 'ed25519:test', now(), $3) ON CONFLICT DO NOTHING""",
                digest,
                bundle_key(digest),
                precompiled(digest) if precompiled is not None else {},
            )
            ext_id = await conn.fetchval(
                """INSERT INTO extensions (name, publisher) VALUES ($1, 'acme')
                   ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id""",
                extension,
            )
            manifest = {"name": extension, "limits": {"timeout_ms": timeout_ms, "memory_mb": 64}}
            version_id = await conn.fetchval(
                """INSERT INTO versions (extension_id, version, content_hash, manifest, publish_workflow_id)
                   VALUES ($1, $2, $3, $4, 'publish/test') RETURNING id""",
                ext_id,
                f"1.0.{uuid.uuid4().int % 100000}",
                digest,
                manifest,
            )
            for method, path in endpoints if endpoints is not None else ENDPOINTS:
                await conn.execute(
                    "INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)",
                    version_id,
                    method,
                    path,
                )
            install_id = await conn.fetchval(
                """INSERT INTO installs (tenant_id, extension_id, version_id, status, rate_limit_rps,
                                         rate_limit_burst, config_version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
                tenant_id,
                ext_id,
                version_id,
                status,
                rps,
                burst,
                1 if config is not None else 0,
            )
            if config is not None:
                await conn.execute(
                    """INSERT INTO install_config (install_id, version, config, workflow_id)
                       VALUES ($1, 1, $2, 'w')""",
                    install_id,
                    config,
                )
        return Install(str(install_id), tenant_id, extension)

    async def set_status(self, inst: Install, status: str) -> None:
        inst.revision = await self.pool.fetchval(
            "UPDATE installs SET status = $2, revision = revision + 1 WHERE id = $1 RETURNING revision",
            inst.install_id,
            status,
        )

    async def set_secrets(self, inst: Install, values: dict[str, str]) -> None:
        """Seal `values` as the next secrets version of the install, as the rotation workflow would."""
        keyring = Keyring.parse(MASTER_KEYS)
        async with self.pool.acquire() as conn, conn.transaction():
            version = 1 + await conn.fetchval(
                "SELECT secrets_version FROM installs WHERE id = $1", inst.install_id
            )
            if version == 1:
                wrapped, master = wrap_data_key(keyring, new_data_key(), install_id=inst.install_id)
                await conn.execute(
                    """INSERT INTO install_data_keys (install_id, wrapped_key, master_key_version)
                       VALUES ($1, $2, $3)""",
                    inst.install_id,
                    wrapped,
                    master,
                )
            row = await conn.fetchrow(
                "SELECT wrapped_key, master_key_version FROM install_data_keys WHERE install_id = $1",
                inst.install_id,
            )
            assert row is not None
            data_key = unwrap_data_key(
                keyring,
                row["wrapped_key"],
                install_id=inst.install_id,
                master_version=row["master_key_version"],
            )
            ciphertext, nonce = encrypt_secrets(
                data_key, values, install_id=inst.install_id, secrets_version=version
            )
            await conn.execute(
                """INSERT INTO install_secrets (install_id, version, ciphertext, nonce, key_names,
                                                master_key_version, workflow_id)
                   VALUES ($1, $2, $3, $4, $5, $6, 'rotate/test')""",
                inst.install_id,
                version,
                ciphertext,
                nonce,
                sorted(values),
                row["master_key_version"],
            )
            inst.revision = await conn.fetchval(
                """UPDATE installs SET secrets_version = $2, revision = revision + 1,
                       granted_capabilities = '{cap:secrets.get}'
                   WHERE id = $1 RETURNING revision""",
                inst.install_id,
                version,
            )

    async def token(self, tenant_id: str | None, *scopes: str, expires_in_s: float | None = None) -> str:
        token = "ext_" + secrets.token_urlsafe(24)
        await self.pool.execute(
            """INSERT INTO api_tokens (token_hash, tenant_id, scopes, name, expires_at)
               VALUES ($1, $2, $3, 'test', now() + make_interval(secs => $4))""",
            hash_token(token),
            tenant_id,
            list(scopes),
            expires_in_s,
        )
        return token


@pytest.fixture
async def registry(db_pool: asyncpg.Pool, runner_data_dir: Path, tmp_path: Path) -> Registry:
    return Registry(db_pool, runner_data_dir, tmp_path)


def gateway_settings(db_url: str, *, runner_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": db_url,
        "runner_url": runner_url,
        "runner_auth": RUNNER_AUTH,
        "admin_token": ADMIN_TOKEN,
        "gateway_log_flush_ms": 20,
        **overrides,
    }
    return ApiSettings(**values)


class Gateway:
    def __init__(self, app: GatewayApp, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def call(
        self,
        method: str,
        url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        return await self.client.request(method, url, headers=hdrs, **kw)

    async def listening(self) -> None:
        assert self.app.resources is not None
        await asyncio.wait_for(self.app.resources.listener.connected.wait(), 30)


async def open_gateway(settings: ApiSettings) -> Gateway:
    app = create_app(settings)
    await app.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
    return Gateway(app, client)


GatewayFactory = Callable[..., Awaitable["Gateway"]]


@pytest.fixture
async def gateway_factory(
    db_url: str, redis_url: str, shared_runner: RunnerProcess
) -> AsyncIterator[GatewayFactory]:
    opened: list[Gateway] = []

    async def make(runner_url: str | None = None, **overrides: Any) -> Gateway:
        overrides.setdefault("redis_url", redis_url)
        if runner_url and all(u.startswith("frame://") for u in runner_url.split(",")):
            overrides.setdefault("runner_ui_url", shared_runner.url)  # UI files need the HTTP port
        gw = await open_gateway(
            gateway_settings(db_url, runner_url=runner_url or shared_runner.url, **overrides)
        )
        opened.append(gw)
        return gw

    yield make
    for gw in opened:
        await gw.client.aclose()
        await gw.app.shutdown()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


async def publish_invalidation(redis_url: str, inst: Install) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        message = {
            "tenant_id": inst.tenant_id,
            "extension": inst.extension,
            "install_id": inst.install_id,
            "revision": inst.revision,
        }
        return int(await client.publish(INVALIDATE_CHANNEL, json.dumps(message)))
    finally:
        await client.aclose()


@contextlib.contextmanager
def gateway_process(
    db_url: str,
    redis_url: str,
    runner_url: str,
    *,
    workers: int = 2,
    port: int | None = None,
    args: tuple[str, ...] = (),
    **settings: str,
) -> Iterator[str]:
    """`python -m api.gateway` as deployed (uvicorn, real sockets); yields its base URL. `settings`
    become EXT_<NAME> variables; `args` are extra command-line flags."""
    port = port if port is not None else free_port()
    env = {
        **os.environ,
        "EXT_ENV": "test",
        "EXT_DATABASE_URL": db_url,
        "EXT_REDIS_URL": redis_url,
        "EXT_RUNNER_URL": runner_url,
        "EXT_RUNNER_AUTH": RUNNER_AUTH,
        "EXT_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXT_LOG_LEVEL": "warning",
        **{f"EXT_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.gateway", "--port", str(port), "--workers", str(workers), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Spawned uvicorn workers each import the whole app: on two busy cores that alone can take
        # 20 s, so this only bounds "never came up".
        wait_http(url + "/healthz", proc=proc, deadline_s=90)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gateway_proc(db_url: str, redis_url: str, shared_runner: RunnerProcess) -> Iterator[str]:
    with gateway_process(db_url, redis_url, shared_runner.url) as url:
        yield url


@pytest.fixture
def gateway_proc_one_worker(db_url: str, redis_url: str, shared_runner: RunnerProcess) -> Iterator[str]:
    """One uvicorn worker: every connection shares one event loop (what a stall would stall). The
    limiter's Redis deadline is raised from 500 ms so that busy CI cores alone never answer 503."""
    with gateway_process(
        db_url, redis_url, shared_runner.url, workers=1, gateway_redis_timeout_ms="5000"
    ) as url:
        yield url
