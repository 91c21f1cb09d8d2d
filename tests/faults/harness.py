"""A full dev stack (cli.devstack.Stack, every service embedded, every app a real process) under a tmp
root, with the handles fault tests need: SIGKILL a service by the pid in state.json, start it again
with the same environment (and record the new pid so `down` stops it), and publish / install / call
the tiny component (tests/bundles/fixtures/handler.wasm: answers 200 to anything, needs no build).

Also used by bench/load.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from temporalio.client import Client

from bundles.hashing import content_hash
from bundles.pack import pack_directory
from bundles.signing import generate_keypair, public_key_to_pem, sign_bundle
from cli.devstack import apps as app_specs
from cli.devstack.postgres import EmbeddedPostgres
from cli.devstack.procs import pid_alive, start_detached, stop_pid
from cli.devstack.redis import EmbeddedRedis
from cli.devstack.stack import Stack, StackInfo
from core.codec import data_converter
from core.crypto import Keyring
from core.temporal import connect_temporal
from schema.manifest import parse_manifest

REPO = Path(__file__).resolve().parents[2]
# App ports of fault stacks come from a block of their own per xdist worker, below Linux's ephemeral
# range (32768-60999): a port picked by bind(0) and released was seen taken by another worker's
# process before the app bound it (a fault test's operator API call answered by a stranger: 404).
# Here no other worker's picks, and no kernel-chosen port, can fall in this worker's block.
APP_PORT_BASE = 20000
APP_PORT_BLOCK = 400
_next_port: dict[str, int] = {}


def app_port(worker: str | None = None) -> int:
    """A free port from this xdist worker's block (gw0 → 20000-20399, gw1 → 20400-20799, ...)."""
    name = worker or os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(name.removeprefix("gw") or 0) % 30
    base = APP_PORT_BASE + index * APP_PORT_BLOCK
    for _ in range(APP_PORT_BLOCK):
        port = _next_port.get(name, base)
        _next_port[name] = base + (port + 1 - base) % APP_PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # still held by an earlier stack of this worker
        return port
    raise RuntimeError(f"no free port in {base}-{base + APP_PORT_BLOCK - 1}")


TINY_WASM = REPO / "tests" / "bundles" / "fixtures" / "handler.wasm"
PUBLISHER = "faults"
T = TypeVar("T")


def clean_environ(*, database_server: str | None = None) -> dict[str, str]:
    """No EXT_* from the suite or a developer's shell, so every service of the stack is embedded;
    with `database_server` (a Postgres URL) the stack uses a new database of its own on that server
    instead of initdb-ing a cluster (seconds saved per test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_")}
    if database_server:
        parts = urlsplit(database_server)
        env["EXT_DATABASE_URL"] = urlunsplit(parts._replace(path=f"/extplane_fault_{uuid.uuid4().hex[:12]}"))
    return env


async def eventually(
    check: Callable[[], Awaitable[T | None | bool]], *, timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: object = None
    while True:
        try:
            value = await check()
        except AssertionError:
            raise
        except Exception as exc:  # the thing polled may be down: that is the point of these tests
            value, last = None, exc
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f}s (last error: {last!r})")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class FaultStack:
    """One Stack with apps, and the operations a fault test needs on it."""

    def __init__(self, root: Path, environ: dict[str, str] | None = None) -> None:
        self.root = root
        self.stack = Stack(root, environ=environ or clean_environ(), with_apps=True, auto_ports=True)
        self.info: StackInfo | None = None
        self.private, self.public = generate_keypair()
        self.work = root / "work"

    @classmethod
    def attach(cls, env: dict[str, str], work: Path) -> FaultStack:
        """A running stack known only by its dev.env values (publish / install / call only)."""
        fs = cls(work)
        fs.info = StackInfo(root=work, env=env, started_now=[], seconds=0.0, services={})
        return fs

    # ---- lifecycle -----------------------------------------------------------------------------
    def up(self) -> StackInfo:
        # Stack picks each app's default port (8080...) when it is free at that instant, which races
        # with other stacks starting in parallel; a free port recorded beforehand is used instead.
        self.root.mkdir(parents=True, exist_ok=True)
        seeded = {spec.name: {"port": app_port()} for spec in app_specs.APPS if spec.default_port}
        (self.root / "state.json").write_text(json.dumps({"services": seeded}))
        self.info = self.stack.up()
        return self.info

    def down(self) -> None:
        self.stack.down()

    @property
    def env(self) -> dict[str, str]:
        assert self.info is not None, "up() first"
        return self.info.env

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "state.json").read_text())
        return data

    def service(self, name: str) -> dict[str, Any]:
        svc: dict[str, Any] = self.state()["services"][name]
        return svc

    def record(self, name: str, **fields: Any) -> None:
        state = self.state()
        state["services"][name].update(fields)
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.chmod(0o600)
        tmp.replace(self.root / "state.json")

    def app_env(self) -> dict[str, str]:
        """The environment `Stack.up` gave its apps."""
        sec = self.state()["secrets"]
        return {
            **self.env,
            "EXT_RUNNER_AUTH": sec["runner_auth"],
            "EXT_MASTER_KEYS": sec["master_keys"],
            "EXT_UI_SESSION_SECRET": sec["ui_session_secret"],
        }

    # ---- faults ----------------------------------------------------------------------------------
    def kill(self, name: str) -> int:
        """SIGKILL a service (no shutdown of any kind) and wait until it is gone. Returns its pid."""
        pid = int(self.service(name)["pid"])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} (pid {pid}) survived SIGKILL")
            time.sleep(0.02)
        return pid

    def restart_app(self, name: str, extra_env: dict[str, str] | None = None) -> int:
        """Start an app again as Stack.up did (same argv, port and environment, plus `extra_env`)."""
        spec = next(a for a in app_specs.APPS if a.name == name)
        svc = self.service(name)
        port = svc.get("port")
        env = {**self.app_env(), **(extra_env or {})}
        if spec.port_env and port:
            env[spec.port_env] = str(port)
        pid = start_detached(app_specs.argv_for(spec, port), log=self.root / "logs" / f"{name}.log", env=env)
        self.record(name, pid=pid)
        if spec.health_path:
            deadline = time.monotonic() + 60
            while not app_specs.healthy(svc["url"], spec.health_path):
                if not pid_alive(pid):
                    raise AssertionError(f"{name} exited on restart; see {self.root / 'logs'}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} not healthy 60 s after restart")
                time.sleep(0.05)
        return pid

    def restart_redis(self) -> int:
        svc = self.service("redis")
        rd = EmbeddedRedis(
            data_dir=self.root / "redis", port=int(svc["port"]), log=self.root / "logs" / "redis.log"
        )
        pid = rd.start()
        self.record("redis", pid=pid)
        return pid

    def postgres(self) -> EmbeddedPostgres:
        svc = self.service("postgres")
        return EmbeddedPostgres(
            data_dir=self.root / "postgres", port=int(svc["port"]), log=self.root / "logs" / "postgres.log"
        )

    def stop_app(self, name: str) -> None:
        stop_pid(self.service(name).get("pid"))

    # ---- control plane -------------------------------------------------------------------------
    async def temporal(self) -> Client:
        """A Temporal client that decodes this stack's (encrypted) payloads."""
        ring = Keyring.parse(self.state()["secrets"]["master_keys"])
        return await connect_temporal(self.env["EXT_TEMPORAL_ADDRESS"], data_converter=data_converter(ring))

    def api(self, timeout: float = 180.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.env["EXT_API_URL"],
            headers={"authorization": f"Bearer {self.env['EXT_ADMIN_TOKEN']}"},
            timeout=timeout,
        )

    def gateway(self, tenant: str, *, timeout: float = 30.0, **kw: Any) -> httpx.AsyncClient:
        """A gateway client acting for `tenant` with the global admin token (as `extctl call` does)."""
        return httpx.AsyncClient(
            base_url=self.env["EXT_GATEWAY_URL"],
            headers={
                "authorization": f"Bearer {self.env['EXT_ADMIN_TOKEN']}",
                "x-extplane-tenant": tenant,
            },
            timeout=timeout,
            **kw,
        )

    async def trust(self, api: httpx.AsyncClient) -> None:
        resp = await api.post(
            "/v1/trust/keys",
            json={"publisher": PUBLISHER, "public_key_pem": public_key_to_pem(self.public).decode()},
        )
        assert resp.status_code == 200, resp.text

    def bundle(self, name: str, version: str = "1.0.0") -> tuple[bytes, str, str]:
        """The tiny component packed and signed: (bundle bytes, content hash, signature header)."""
        d = self.work / f"{name}-{version}"
        (d / "dist").mkdir(parents=True, exist_ok=True)
        (d / "dist" / "main.wasm").write_bytes(TINY_WASM.read_bytes())
        manifest = {
            "name": name,
            "publisher": PUBLISHER,
            "version": version,
            "runtime": "wasm-component@1",
            "capabilities": ["cap:log.emit", "cap:debug.logs"],
            "api": {"endpoints": [{"method": "GET", "path": "/hello"}]},
        }
        (d / "manifest.json").write_text(json.dumps(manifest))
        data = pack_directory(d)
        digest = content_hash(data)
        doc = sign_bundle(self.private, content_hash=digest, manifest=parse_manifest(manifest))
        return data, digest, base64.b64encode(doc.dumps().encode()).decode()

    async def publish(self, api: httpx.AsyncClient, name: str, version: str = "1.0.0") -> httpx.Response:
        data, digest, sig = self.bundle(name, version)
        return await api.post(
            "/v1/bundles",
            content=data,
            headers={
                "x-content-hash": digest,
                "content-type": "application/octet-stream",
                "x-bundle-signature": sig,
            },
        )

    async def install(self, api: httpx.AsyncClient, tenant: str, name: str, version: str = "1.0.0") -> None:
        resp = await api.post(f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": version})
        assert resp.status_code == 200, resp.text

    async def ready_extension(
        self, tenant: str = "t1", name: str = "com.faults.tiny", *, rps: float = 1e6, burst: int = 1_000_000
    ) -> tuple[str, str]:
        """Trust, publish and install the tiny component, with a rate limit that traffic never hits
        (the default is 50/s); returns (tenant, extension)."""
        async with self.api() as api:
            await self.trust(api)
            resp = await self.publish(api, name)
            assert resp.status_code == 200, resp.text
            await self.install(api, tenant, name)
            limits = await api.put(
                f"/v1/tenants/{tenant}/installs/{name}/limits", json={"rps": rps, "burst": burst}
            )
            assert limits.status_code == 200, limits.text
        return tenant, name


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
