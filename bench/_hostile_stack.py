"""The stack of `bench.hostile`: a full dev stack with two tenants, a victim and an attacker.

* tenant `victim` has `com.faults.victim` (the tiny component: `GET /hello` answers 200);
* tenant `attacker` has `com.faults.attacker` (tests/gateway/fixtures/gwguest.wasm: `/loop` spins
  forever, `/reflect` echoes) with a 1 s deadline, a UI (so `/ext-ui/...` paths exist) and
  `cap:debug.logs`; and the component-WAT guests of tests/runner/wat_guests.py: `com.faults.memory`
  (16 extra linear memories, each filled to what it is granted) and `com.faults.headers` (response
  headers that all alias one 1 MiB buffer), both under a 32 MiB cap. Both tenants have their own
  tokens, the attacker's with `ext:debug`.

`probe()` is the benign caller: sequential `GET /hello` calls of the victim with its own token over one
keep-alive connection, from a process of its own, so its latency is what another tenant feels while
an attack runs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._probe import Probe
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from bundles.signing import sign_bundle
from schema.manifest import parse_manifest
from tests.faults.harness import PUBLISHER, TINY_WASM, FaultStack
from tests.runner.wat_guests import ALIAS_HEADERS, MANY_MEMORIES

REPO = Path(__file__).resolve().parents[1]
GWGUEST = REPO / "tests" / "gateway" / "fixtures" / "gwguest.wasm"
VICTIM, VICTIM_EXT = "victim", "com.faults.victim"
ATTACKER, ATTACKER_EXT = "attacker", "com.faults.attacker"
ATTACK_TIMEOUT_MS = 1000
MEMORY_EXT, HEADERS_EXT = "com.faults.memory", "com.faults.headers"
ATTACK_MEMORY_MB = 32


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
    if resp.status_code != 200:
        raise RuntimeError(f"publish of {name} refused: {resp.text[:300]}")
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
        for name, wasm in ((MEMORY_EXT, MANY_MEMORIES), (HEADERS_EXT, ALIAS_HEADERS)):
            await _publish_install(
                fs,
                api,
                ATTACKER,
                name,
                wasm,
                {
                    "api": {"endpoints": [{"method": "GET", "path": "/x"}]},
                    "limits": {"timeout_ms": ATTACK_TIMEOUT_MS, "memory_mb": ATTACK_MEMORY_MB},
                },
                ui=False,
            )
        h.victim_token = await _token(api, VICTIM, ["ext:read", "ext:write"])
        h.attacker_token = await _token(api, ATTACKER, ["ext:read", "ext:write", "ext:debug"])
    return h


def probe(h: Hostile) -> Probe:
    """The victim's benign calls, in a process of their own (bench/_probe.py)."""
    return Probe(h.gateway, h.victim_token, f"/api/ext/{VICTIM_EXT}/hello")
