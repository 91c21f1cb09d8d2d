"""Debug-stream tests: a real redis-server started here (killable), the real runner process with its
Redis sink, the real gateway process, and a Python guest that logs, writes stdout/stderr and spins.

Per xdist worker: one migrated database, one redis-server, one runner and one gateway (session
scope); tests isolate by uuid tenants. Tests that need other settings (a short session limit, a Redis
to kill) start their own processes with the same helpers.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from api.auth import token_hash
from cli.devstack.redis import find_redis_server
from tests.runner.runner_helpers import (
    AUTH,
    RunnerProcess,
    free_port,
    precompiled_record,
    publish,
    python_guest,
    start_runner,
)
from tests.support.databases import scratch_database
from tests.support.polling import eventually as eventually  # re-exported: tests import it from here

ROOT = Path(__file__).resolve().parents[2]
GUEST_DIR = Path(__file__).resolve().parent / "guests" / "pydebug"
ADMIN_TOKEN = "debug-tests-admin-token-0123456789"
ENDPOINTS = [("GET", "/chatty"), ("GET", "/quiet"), ("GET", "/spin")]
SPIN_TIMEOUT_MS = 300


class RedisServer:
    """A redis-server process on a fixed port: kill() and start() again on the same port."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.dir = work / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        argv = [
            str(find_redis_server()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError("redis-server did not answer PING")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def wait_http(url: str, proc: subprocess.Popen[bytes], *, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not healthy within {deadline_s}s")


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_gateway(
    work: Path, *, db_url: str, redis_url: str, debug_redis_url: str, runner_url: str, **settings: str
) -> GatewayProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    env.update(
        {
            "EXT_ENV": "test",
            "EXT_DATABASE_URL": db_url,
            "EXT_REDIS_URL": redis_url,
            "EXT_DEBUG_REDIS_URL": debug_redis_url,
            "EXT_RUNNER_URL": runner_url,
            "EXT_RUNNER_AUTH": AUTH,
            "EXT_ADMIN_TOKEN": ADMIN_TOKEN,
            "EXT_LOG_LEVEL": "warning",
            "EXT_LOG_FORMAT": "json",
            "EXT_DEBUG_HEARTBEAT_SECONDS": "0.5",
            "EXT_DEBUG_RETRY_MAX_SECONDS": "0.5",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"EXT_{k.upper()}": v for k, v in settings.items()})
    log_path = work / f"gateway-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.gateway", "--port", str(port), "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    gw = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_http(gw.url + "/healthz", proc)
    except Exception:
        gw.stop()
        raise RuntimeError(f"gateway did not start:\n{gw.logs()}") from None
    return gw


@dataclass
class Stack:
    """The processes of one debug-stream set-up and the registry they share."""

    db_url: str
    redis: RedisServer
    runner: RunnerProcess
    gateway: GatewayProcess
    work: Path
    guest: tuple[bytes, bytes]
    hashes: dict[str, str] = field(default_factory=dict)

    async def install(
        self, tenant: str, extension: str, *, capabilities: tuple[str, ...] = ("cap:debug.logs",)
    ) -> str:
        """Registry rows for an active install of the debug guest; returns the install id."""
        wasm, artifact = self.guest
        manifest = {
            "name": extension,
            "publisher": "acme",
            "version": "1.0.0",
            "runtime": "wasm-component@1",
            "limits": {"timeout_ms": SPIN_TIMEOUT_MS, "memory_mb": 64},
        }
        digest = publish(self.runner.data_dir, wasm, manifest, self.work, artifact=artifact)
        conn = await asyncpg.connect(self.db_url)
        try:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO trust_keys (key_id, publisher, public_key_pem)
                       VALUES ('ed25519:test', 'acme', 'x') ON CONFLICT DO NOTHING"""
                )
                await conn.execute(
                    """INSERT INTO bundles (content_hash, size_bytes, storage_key, signature,
                                            signer_key_id, verified_at, precompiled)
                       VALUES ($1, 1, 'k', 'sig', 'ed25519:test', now(), $2::jsonb)
                       ON CONFLICT DO NOTHING""",
                    digest,
                    json.dumps(precompiled_record(digest)),  # the runner checks the artifact against it
                )
                ext_id = await conn.fetchval(
                    """INSERT INTO extensions (name, publisher) VALUES ($1, 'acme')
                       ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id""",
                    extension,
                )
                version_id = await conn.fetchval(
                    """INSERT INTO versions (extension_id, version, content_hash, manifest,
                                             publish_workflow_id, capabilities)
                       VALUES ($1, '1.0.0', $2, $3, 'publish/test', $4)
                       ON CONFLICT (extension_id, version) DO UPDATE SET manifest = excluded.manifest
                       RETURNING id""",
                    ext_id,
                    digest,
                    json.dumps(manifest),
                    list(capabilities),
                )
                for method, path in ENDPOINTS:
                    await conn.execute(
                        """INSERT INTO api_endpoints (version_id, method, path) VALUES ($1, $2, $3)
                           ON CONFLICT DO NOTHING""",
                        version_id,
                        method,
                        path,
                    )
                install_id = await conn.fetchval(
                    """INSERT INTO installs (tenant_id, extension_id, version_id, status,
                                             granted_capabilities)
                       VALUES ($1, $2, $3, 'active', $4) RETURNING id""",
                    tenant,
                    ext_id,
                    version_id,
                    sorted({"cap:context.read", "cap:log.emit", "cap:user.read", *capabilities}),
                )
        finally:
            await conn.close()
        self.hashes[f"{tenant}/{extension}"] = digest
        return str(install_id)

    async def token(self, tenant: str | None, *scopes: str) -> str:
        token = "ext_" + secrets.token_urlsafe(24)
        conn = await asyncpg.connect(self.db_url)
        try:
            await conn.execute(
                "INSERT INTO api_tokens (token_hash, tenant_id, scopes, name) VALUES ($1, $2, $3, 'test')",
                token_hash(token),
                tenant,
                list(scopes),
            )
        finally:
            await conn.close()
        return token

    async def call(self, token: str, extension: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway.url, timeout=30) as client:
            return await client.get(f"/api/ext/{extension}{path}", headers=bearer(token))


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


@dataclass
class SseEvent:
    event: str  # "message" for debug events
    data: dict[str, Any]
    id: str | None


class SseReader:
    """Parse an SSE response incrementally; every read has a deadline (never a fixed sleep)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0

    async def next(self, *, timeout_s: float = 15.0) -> SseEvent:
        return await asyncio.wait_for(self._next(), timeout_s)

    async def _next(self) -> SseEvent:
        event, data, entry_id = "message", "", None
        async for line in self._lines:
            if line == "":
                if data:
                    return SseEvent(event, json.loads(data), entry_id)
                continue
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif line.startswith("id: "):
                entry_id = line[len("id: ") :]
        raise EOFError("stream ended")

    async def until(
        self, predicate: Any, *, timeout_s: float = 20.0, keep: list[SseEvent] | None = None
    ) -> SseEvent:
        """Read events until `predicate(event)` holds; the events read are appended to `keep`."""
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout_s}s; saw {keep!r}")
            ev = await self.next(timeout_s=left)
            if keep is not None:
                keep.append(ev)
            if predicate(ev):
                return ev


def limiter_redis_url(worker_id_num: int) -> str:
    """The suite's Redis (db of this worker) for the gateway's rate limiter: never the killed one."""
    parts = urlsplit(os.environ["EXT_TEST_REDIS_URL"])
    return urlunsplit(parts._replace(path=f"/{1 + worker_id_num}"))


@pytest.fixture(scope="session")
async def debug_db_url(database_server_url: str) -> AsyncIterator[str]:
    async with scratch_database(database_server_url, "extplane_debug") as url:
        yield url


@pytest.fixture(scope="session")
def debug_guest() -> tuple[bytes, bytes]:
    return python_guest(GUEST_DIR)


def start_stack(
    work: Path,
    *,
    db_url: str,
    guest: tuple[bytes, bytes],
    limiter_url: str,
    redis: RedisServer | None = None,
    **gateway_settings: str,
) -> Stack:
    work.mkdir(parents=True, exist_ok=True)
    if redis is None:
        redis = RedisServer(work)
        redis.start()
    runner = start_runner(
        work,
        db_url,
        threads=2,
        debug_redis_url=redis.url(),
        debug_retry_max_seconds="0.5",
        fuel_per_ms="1000000000",  # the spinning guest meets its deadline, not its fuel
    )
    try:
        gateway = start_gateway(
            work,
            db_url=db_url,
            redis_url=limiter_url,
            debug_redis_url=redis.url(),
            runner_url=runner.url,
            **gateway_settings,
        )
    except Exception:
        runner.stop()
        raise
    return Stack(db_url=db_url, redis=redis, runner=runner, gateway=gateway, work=work, guest=guest)


def stop_stack(stack: Stack) -> None:
    stack.gateway.stop()
    stack.runner.stop()
    stack.redis.kill()


@pytest.fixture(scope="session")
def stack(
    debug_db_url: str,
    debug_guest: tuple[bytes, bytes],
    worker_id_num: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    s = start_stack(
        tmp_path_factory.mktemp("debug-stack"),
        db_url=debug_db_url,
        guest=debug_guest,
        limiter_url=limiter_redis_url(worker_id_num),
    )
    yield s
    stop_stack(s)
