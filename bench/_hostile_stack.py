"""The stack of `bench.hostile`: a full dev stack with two tenants, a victim and an attacker.

* tenant `victim` has `com.faults.victim` (the tiny component: `GET /hello` answers 200);
* tenant `attacker` has `com.faults.attacker` (tests/gateway/fixtures/gwguest.wasm: `/loop` spins
  forever, `/reflect` echoes) with a 1 s deadline, a UI (so `/ext-ui/...` paths exist) and
  `cap:debug.logs`; both have their own tenant tokens, the attacker's with `ext:debug`.

`Probe` is the benign caller: sequential `GET /hello` calls of the victim with its own token over one
keep-alive connection, so its latency is what another tenant feels while an attack runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bundles.hashing import content_hash
from bundles.pack import pack_directory
from bundles.signing import sign_bundle
from schema.manifest import parse_manifest
from tests.faults.harness import PUBLISHER, TINY_WASM, FaultStack

REPO = Path(__file__).resolve().parents[1]
GWGUEST = REPO / "tests" / "gateway" / "fixtures" / "gwguest.wasm"
VICTIM, VICTIM_EXT = "victim", "com.faults.victim"
ATTACKER, ATTACKER_EXT = "attacker", "com.faults.attacker"
ATTACK_TIMEOUT_MS = 1000


@dataclass
class Hostile:
    fs: FaultStack
    victim_token: str = ""
    attacker_token: str = ""
    attacker_hash: str = ""

    @property
    def gateway(self) -> str:
        return self.fs.env["EXT_GATEWAY_URL"]

    def tenant_client(self, token: str, *, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.gateway, headers={"authorization": f"Bearer {token}"}, timeout=timeout
        )


def _signed(
    fs: FaultStack, name: str, wasm: bytes, manifest: dict[str, Any], ui: bool
) -> tuple[bytes, str, str]:
    d = fs.work / name
    (d / "dist").mkdir(parents=True, exist_ok=True)
    (d / "dist" / "main.wasm").write_bytes(wasm)
    if ui:
        (d / "ui").mkdir(exist_ok=True)
        (d / "ui" / "index.html").write_text("<!doctype html><title>attacker ui</title>")
    (d / "manifest.json").write_text(json.dumps(manifest))
    data = pack_directory(d)
    digest = content_hash(data)
    doc = sign_bundle(fs.private, content_hash=digest, manifest=parse_manifest(manifest))
    return data, digest, base64.b64encode(doc.dumps().encode()).decode()


async def _publish_install(
    fs: FaultStack,
    api: httpx.AsyncClient,
    tenant: str,
    name: str,
    wasm: bytes,
    extra: dict[str, Any],
    ui: bool,
) -> str:
    manifest = {
        "name": name,
        "publisher": PUBLISHER,
        "version": "1.0.0",
        "runtime": "wasm-component@1",
        **extra,
    }
    data, digest, sig = _signed(fs, name, wasm, manifest, ui)
    resp = await api.post(
        "/v1/bundles",
        content=data,
        headers={
            "x-content-hash": digest,
            "content-type": "application/octet-stream",
            "x-bundle-signature": sig,
        },
    )
    resp.raise_for_status()
    await fs.install(api, tenant, name)
    limits = await api.put(
        f"/v1/tenants/{tenant}/installs/{name}/limits", json={"rps": 1e6, "burst": 1_000_000}
    )
    limits.raise_for_status()
    return digest


async def _token(api: httpx.AsyncClient, tenant: str, scopes: list[str]) -> str:
    resp = await api.post(
        "/v1/tokens", json={"tenant_id": tenant, "scopes": scopes, "name": f"bench-{tenant}"}
    )
    resp.raise_for_status()
    token: str = resp.json()["token"]
    return token


async def prepare(fs: FaultStack) -> Hostile:
    h = Hostile(fs)
    async with fs.api() as api:
        await fs.trust(api)
        await _publish_install(
            fs,
            api,
            VICTIM,
            VICTIM_EXT,
            TINY_WASM.read_bytes(),
            {"api": {"endpoints": [{"method": "GET", "path": "/hello"}]}},
            ui=False,
        )
        endpoints = [
            {"method": m, "path": p} for m, p in (("GET", "/loop"), ("GET", "/reflect"), ("POST", "/reflect"))
        ]
        h.attacker_hash = await _publish_install(
            fs,
            api,
            ATTACKER,
            ATTACKER_EXT,
            GWGUEST.read_bytes(),
            {
                "api": {"endpoints": endpoints},
                "capabilities": ["cap:log.emit", "cap:debug.logs"],
                "limits": {"timeout_ms": ATTACK_TIMEOUT_MS, "memory_mb": 32},
                "ui": {"type": "iframe", "entry": "ui/index.html"},
            },
            ui=True,
        )
        h.victim_token = await _token(api, VICTIM, ["ext:read", "ext:write"])
        h.attacker_token = await _token(api, ATTACKER, ["ext:read", "ext:write", "ext:debug"])
    return h


@dataclass
class Probe:
    """The victim's benign calls while something else happens; latencies in seconds."""

    hostile: Hostile
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        async with self.hostile.tenant_client(self.hostile.victim_token, timeout=15.0) as client:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    resp = await client.get(f"/api/ext/{VICTIM_EXT}/hello")
                    status = str(resp.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.latencies.append(time.perf_counter() - t0)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                await asyncio.sleep(0.01)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def p50_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2] * 1e3

    @property
    def failures(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")
