"""extplane's own processes in the dev stack. Each is started only once its package provides the entry
point, so `extctl dev up` grows with the project instead of failing on what is not built yet."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True, kw_only=True)
class AppSpec:
    name: str
    module: str  # the importable module that must exist for this app to be started
    argv: tuple[str, ...]  # after the python executable; {port} is substituted
    url_env: str | None  # the dev.env key that carries its base URL
    health_path: str | None  # HTTP readiness probe; None = "process stays up"
    default_port: int | None
    # Set to the chosen port for processes that take it from their settings rather than argv.
    port_env: str | None = None


APPS: tuple[AppSpec, ...] = (
    AppSpec(
        name="runner",
        module="runner.__main__",
        argv=("-m", "runner"),
        url_env="EXT_RUNNER_URL",
        health_path="/healthz",
        default_port=8091,
        port_env="EXT_PORT",
    ),
    AppSpec(
        name="worker",
        module="workflows.worker",
        argv=("-m", "workflows.worker"),
        url_env=None,
        health_path=None,
        default_port=None,
    ),
    AppSpec(
        name="api",
        module="api.operator.__main__",
        argv=("-m", "api.operator", "--port", "{port}"),
        url_env="EXT_API_URL",
        health_path="/healthz",
        default_port=8090,
    ),
    AppSpec(
        name="gateway",
        module="api.gateway.__main__",
        argv=("-m", "api.gateway", "--port", "{port}"),
        url_env="EXT_GATEWAY_URL",
        health_path="/healthz",
        default_port=8080,
    ),
)

# The packages the apps run. cli/ is left out: it is the launcher, not part of any app.
APP_PACKAGES = ("activities", "api", "bundles", "core", "registry", "runner", "schema", "workflows")
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def code_fingerprint(root: Path = _SOURCE_ROOT) -> str:
    """A digest of the apps' Python sources (path, size, mtime). `dev up` restarts a running app whose
    fingerprint differs instead of reusing a process that still runs yesterday's code."""
    digest = hashlib.sha256()
    for package in APP_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            st = path.stat()
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def available(spec: AppSpec) -> bool:
    try:
        return importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:
        return False


def argv_for(spec: AppSpec, port: int | None) -> list[str]:
    return [sys.executable, *(a.replace("{port}", str(port)) for a in spec.argv)]


def healthy(base_url: str, path: str, *, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(base_url + path, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
