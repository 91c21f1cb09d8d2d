"""`Stack`: bring the dev stack up (idempotently), report it, take down what it started.

Each service is, in order of preference: the one named by `EXT_DATABASE_URL` / `EXT_REDIS_URL` /
`EXT_TEMPORAL_ADDRESS` (external: checked, never stopped); the one a previous `up` started and that is
still healthy (reused); or a new embedded one under the stack root. Secrets of the stack (admin token,
runner shared secret, master keyring, UI session key) are generated once and kept in the state file
(mode 0600); every process log is 0600 too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import functools
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli.devstack import apps as app_specs
from cli.devstack.postgres import EmbeddedPostgres
from cli.devstack.procs import (
    StackError,
    pick_port,
    pid_alive,
    port_open,
    start_detached,
    stop_pid,
    wait_until,
)
from cli.devstack.redis import EmbeddedRedis
from cli.devstack.temporal import TemporalDevServer
from core.crypto import Keyring
from core.migrations import ensure_database, migrate

DATABASE = "extplane"
DEFAULT_PORTS = {"postgres": 55432, "redis": 56379, "temporal": 7233, "temporal_ui": 8233}


@dataclass
class ServiceState:
    managed: bool
    url: str
    pid: int | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackInfo:
    root: Path
    env: dict[str, str]
    services: dict[str, ServiceState]
    started_now: list[str]
    seconds: float


class Stack:
    """The dev stack rooted at `root` (default `.extplane/`)."""

    def __init__(
        self,
        root: Path,
        *,
        environ: Mapping[str, str] | None = None,
        with_apps: bool = True,
        auto_ports: bool = False,
    ) -> None:
        self.root = root
        self.environ = dict(os.environ if environ is None else environ)
        self.with_apps = with_apps
        # Tests ask for auto ports so a developer's running stack and the suite never collide.
        self.auto_ports = auto_ports
        self.state_file = root / "state.json"
        self.env_file = root / "dev.env"
        self.logs = root / "logs"

    # ---- state -------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _port(self, name: str, previous: int | None, default: int | None = None) -> int:
        """The port a previous `up` used when free again, else the default (any free port with
        auto_ports, so two stacks started at once never race for the same default)."""
        if previous is not None:
            return pick_port(previous)
        return pick_port(None if self.auto_ports else (default or DEFAULT_PORTS.get(name)))

    @staticmethod
    def _secrets(state: dict[str, Any]) -> dict[str, str]:
        sec: dict[str, str] = state.get("secrets") or {}
        sec.setdefault("admin_token", "ext_admin_" + secrets.token_urlsafe(32))
        sec.setdefault("runner_auth", secrets.token_urlsafe(32))
        sec.setdefault("master_keys", Keyring.generate_entry(1))
        # Its own key for UI sessions, as in prod, rather than the dev fallback derived from runner_auth.
        sec.setdefault("ui_session_secret", secrets.token_urlsafe(32))
        state["secrets"] = sec
        return sec

    # ---- up ----------------------------------------------------------------------------------
    def up(self) -> StackInfo:
        t0 = time.monotonic()
        with self._locked():
            state = self._load()
            services: dict[str, dict[str, Any]] = state.setdefault("services", {})
            started: list[str] = []
            sec = self._secrets(state)
            try:
                db_url = self._up_postgres(services, started)
                redis_url = self._up_redis(services, started)
                temporal_addr, ui_url = self._up_temporal(services, started)
            finally:
                self._save(state)
            asyncio.run(self._prepare(db_url, temporal_addr))
            env = {
                "EXT_ENV": self.environ.get("EXT_ENV", "dev"),
                "EXT_DATABASE_URL": db_url,
                "EXT_REDIS_URL": redis_url,
                "EXT_TEMPORAL_ADDRESS": temporal_addr,
                "EXT_TEMPORAL_UI_URL": ui_url,
                "EXT_ADMIN_TOKEN": sec["admin_token"],
                "EXT_DATA_DIR": str((self.root / "data").resolve()),
            }
            app_env = {
                **env,
                "EXT_RUNNER_AUTH": sec["runner_auth"],
                "EXT_MASTER_KEYS": sec["master_keys"],
                "EXT_UI_SESSION_SECRET": sec["ui_session_secret"],
            }
            try:
                if self.with_apps:
                    self._up_apps(services, started, env, app_env)
            finally:
                self._save(state)
            for spec in app_specs.APPS:
                if spec.url_env and spec.url_env not in env:
                    port = spec.default_port if not self.auto_ports else None
                    # Not built yet: the URL says where it will listen once it is.
                    env[spec.url_env] = f"http://127.0.0.1:{port or 0}"
            self._write_env(env)
            return StackInfo(
                root=self.root,
                env=env,
                started_now=started,
                seconds=time.monotonic() - t0,
                services={k: ServiceState(**v) for k, v in services.items()},
            )

    def _up_postgres(self, services: dict[str, dict[str, Any]], started: list[str]) -> str:
        external = self.environ.get("EXT_DATABASE_URL")
        if external:
            services["postgres"] = {"managed": False, "url": external}
            return external
        prev = services.get("postgres") or {}
        if prev.get("managed") and prev.get("port") and port_open("127.0.0.1", prev["port"]):
            return str(prev["url"])
        port = self._port("postgres", prev.get("port"))
        pg = EmbeddedPostgres(data_dir=self.root / "postgres", port=port, log=self.logs / "postgres.log")
        pg.start()
        services["postgres"] = {"managed": True, "url": pg.url(DATABASE), "pid": pg.pid(), "port": port}
        started.append("postgres")
        return pg.url(DATABASE)

    def _up_redis(self, services: dict[str, dict[str, Any]], started: list[str]) -> str:
        external = self.environ.get("EXT_REDIS_URL")
        if external:
            services["redis"] = {"managed": False, "url": external}
            return external
        prev = services.get("redis") or {}
        if prev.get("managed") and pid_alive(prev.get("pid")) and port_open("127.0.0.1", prev["port"]):
            return str(prev["url"])
        port = self._port("redis", prev.get("port"))
        rd = EmbeddedRedis(data_dir=self.root / "redis", port=port, log=self.logs / "redis.log")
        pid = rd.start()
        services["redis"] = {"managed": True, "url": rd.url(0), "pid": pid, "port": port}
        started.append("redis")
        return rd.url(0)

    def _up_temporal(self, services: dict[str, dict[str, Any]], started: list[str]) -> tuple[str, str]:
        external = self.environ.get("EXT_TEMPORAL_ADDRESS")
        if external:
            ui = self.environ.get("EXT_TEMPORAL_UI_URL", "")
            services["temporal"] = {"managed": False, "url": external, "extra": {"ui_url": ui}}
            return external, ui
        prev = services.get("temporal") or {}
        if prev.get("managed") and pid_alive(prev.get("pid")) and port_open("127.0.0.1", prev["port"]):
            return str(prev["url"]), str(prev["extra"]["ui_url"])
        port = self._port("temporal", prev.get("port"))
        ui_port = self._port("temporal_ui", (prev.get("extra") or {}).get("ui_port"))
        srv = TemporalDevServer(
            data_dir=self.root / "temporal", port=port, ui_port=ui_port, log=self.logs / "temporal.log"
        )
        pid = srv.start()
        services["temporal"] = {
            "managed": True,
            "url": srv.address,
            "pid": pid,
            "port": port,
            "extra": {"ui_url": srv.ui_url, "ui_port": ui_port},
        }
        started.append("temporal")
        return srv.address, srv.ui_url

    async def _prepare(self, db_url: str, temporal_addr: str) -> None:
        from core.temporal import connect_temporal, register_search_attributes

        await ensure_database(db_url)
        await migrate(db_url)
        client = await connect_temporal(temporal_addr)
        await register_search_attributes(client)

    def _up_apps(
        self,
        services: dict[str, dict[str, Any]],
        started: list[str],
        env: dict[str, str],
        app_env: dict[str, str],
    ) -> None:
        """Start every app that is not already healthy, all at once (each pays ~1-2 s of imports),
        then wait for all. Ports and URLs are fixed first: apps find each other through the env."""
        to_start: list[tuple[app_specs.AppSpec, int | None, str]] = []
        code = app_specs.code_fingerprint()
        for spec in app_specs.APPS:
            if not app_specs.available(spec):
                continue
            prev = services.get(spec.name) or {}
            running = bool(prev.get("managed")) and pid_alive(prev.get("pid"))
            if (
                running
                and (prev.get("extra") or {}).get("code") == code
                and (spec.health_path is None or app_specs.healthy(prev["url"], spec.health_path))
            ):
                if spec.url_env:
                    env[spec.url_env] = app_env[spec.url_env] = prev["url"]
                continue
            if running:
                # Unhealthy, or started from sources that have changed since: replace it, same port.
                stop_pid(prev.get("pid"))
            port = self._port(spec.name, prev.get("port"), spec.default_port) if spec.default_port else None
            url = f"http://127.0.0.1:{port}" if port else ""
            if spec.url_env:
                env[spec.url_env] = app_env[spec.url_env] = url
            to_start.append((spec, port, url))
        launched: list[tuple[app_specs.AppSpec, str, int, Path]] = []
        for spec, port, url in to_start:
            log = self.logs / f"{spec.name}.log"
            proc_env = {**app_env, **({spec.port_env: str(port)} if spec.port_env and port else {})}
            pid = start_detached(app_specs.argv_for(spec, port), log=log, env=proc_env)
            services[spec.name] = {
                "managed": True,
                "url": url,
                "pid": pid,
                "port": port,
                "extra": {"code": code},
            }
            started.append(spec.name)
            launched.append((spec, url, pid, log))
        t0 = time.monotonic()
        for spec, url, pid, log in launched:
            if spec.health_path:
                wait_until(
                    functools.partial(app_specs.healthy, url, spec.health_path),
                    timeout=60,
                    what=spec.name,
                    log=log,
                    alive=functools.partial(pid_alive, pid),
                )
        for spec, _url, pid, log in launched:
            if spec.health_path is None:
                # No health endpoint (the worker): it must at least survive its imports and connect.
                time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
                if not pid_alive(pid):
                    raise StackError(f"{spec.name} exited during start-up; see {log}")

    def _write_env(self, env: dict[str, str]) -> None:
        lines = [f"{k}={_shell_quote(v)}" for k, v in sorted(env.items())]
        tmp = self.env_file.with_suffix(".tmp")
        tmp.write_text(
            "# written by `extctl dev up`; read by every extctl command\n" + "\n".join(lines) + "\n"
        )
        tmp.chmod(0o600)
        tmp.replace(self.env_file)

    # ---- status / down -----------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        state = self._load()
        out: dict[str, dict[str, Any]] = {}
        for name, svc in (state.get("services") or {}).items():
            healthy = self._healthy(name, svc)
            out[name] = {
                "managed": svc.get("managed", False),
                "url": svc.get("url"),
                "pid": svc.get("pid"),
                "healthy": healthy,
            }
        return out

    def _healthy(self, name: str, svc: dict[str, Any]) -> bool:
        spec = next((a for a in app_specs.APPS if a.name == name), None)
        if spec is not None:
            alive = pid_alive(svc.get("pid"))
            return alive and (spec.health_path is None or app_specs.healthy(svc["url"], spec.health_path))
        port = svc.get("port")
        if port is None:
            url = str(svc.get("url", ""))
            parts = urlsplit(url if "://" in url else f"tcp://{url}")
            return parts.port is not None and port_open(parts.hostname or "127.0.0.1", parts.port)
        return port_open("127.0.0.1", int(port))

    def down(self) -> list[str]:
        """Stop what this stack started (apps first), never external services. Returns what stopped."""
        stopped: list[str] = []
        with self._locked():
            state = self._load()
            services: dict[str, dict[str, Any]] = state.get("services") or {}
            order = [a.name for a in reversed(app_specs.APPS)] + ["temporal", "redis", "postgres"]
            for name in order:
                svc = services.get(name)
                if not svc or not svc.get("managed"):
                    continue
                if name == "postgres":
                    EmbeddedPostgres(
                        data_dir=self.root / "postgres", port=svc["port"], log=self.logs / "postgres.log"
                    ).stop()
                else:
                    stop_pid(svc.get("pid"))
                services.pop(name)
                stopped.append(name)
            self._save(state)
        return stopped


def _shell_quote(v: str) -> str:
    if v and all(c.isalnum() or c in "@%+=:,./-_" for c in v):
        return v
    return "'" + v.replace("'", "'\"'\"'") + "'"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse `.extplane/dev.env` (KEY=value lines, values optionally single-quoted)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1].replace("'\"'\"'", "'")
        out[key.strip()] = value
    return out


def new_master_key_entry(version: int) -> str:
    return f"{version}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
