"""Control-plane latency: publish and install through the operator API, next to the floor of the same
Temporal server (an empty workflow with one no-op activity), interleaved in one run.

    python -m bench.control_plane [--installs 50] [--publishes 10] [--skip-python-sample]

It starts its own stack (worker, operator API, runner, gateway) under a temporary root, on free ports;
EXT_DATABASE_URL / EXT_REDIS_URL / EXT_TEMPORAL_ADDRESS, when set, are used as in `extctl dev up`.
Figures: install (API call -> install active, the API answers when the workflow's Update completed),
publish of a tiny component (upload -> verified, precompiled, registered), and one publish of the
Python-SDK sample (dominated by Cranelift compiling an ~18 MB component).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench._floor_workflow import EmptyWorkflow, noop_activity
from bench.report import Row
from bundles.hashing import content_hash
from bundles.pack import pack_directory
from bundles.signing import generate_keypair, public_key_to_pem, sign_bundle
from cli.devstack.stack import Stack
from schema.manifest import parse_manifest

REPO = Path(__file__).resolve().parent.parent
TINY_WASM = REPO / "tests" / "bundles" / "fixtures" / "handler.wasm"
PUBLISHER = "bench"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _bundle_dir(root: Path, name: str, version: str, wasm: bytes) -> Path:
    d = root / f"{name}-{version}"
    (d / "dist").mkdir(parents=True, exist_ok=True)
    (d / "dist" / "main.wasm").write_bytes(wasm)
    manifest = {
        "name": name,
        "publisher": PUBLISHER,
        "version": version,
        "runtime": "wasm-component@1",
        "capabilities": ["cap:log.emit"],
        "api": {"endpoints": [{"method": "GET", "path": "/hello"}]},
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


class Bench:
    def __init__(self, api: str, token: str, temporal: Client, work: Path) -> None:
        self.http = httpx.AsyncClient(base_url=api, headers={"authorization": f"Bearer {token}"}, timeout=600)
        self.temporal = temporal
        self.work = work
        self.private, self.public = generate_keypair()
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"

    async def trust(self) -> None:
        resp = await self.http.post(
            "/v1/trust/keys",
            json={
                "publisher": PUBLISHER,
                "public_key_pem": public_key_to_pem(self.public).decode(),
            },
        )
        resp.raise_for_status()

    async def publish(self, src: Path) -> float:
        data = pack_directory(src)
        digest = content_hash(data)
        doc = sign_bundle(
            self.private,
            content_hash=digest,
            manifest=parse_manifest(json.loads((src / "manifest.json").read_text())),
        )
        t0 = time.perf_counter()
        resp = await self.http.post(
            "/v1/bundles",
            content=data,
            headers={
                "x-content-hash": digest,
                "content-type": "application/octet-stream",
                "x-bundle-signature": base64.b64encode(doc.dumps().encode()).decode(),
            },
        )
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"publish failed: {resp.status_code} {resp.text[:300]}")
        return elapsed

    async def install(self, tenant: str, name: str, version: str) -> float:
        t0 = time.perf_counter()
        resp = await self.http.post(
            f"/v1/tenants/{tenant}/installs", json={"extension": name, "version": version}
        )
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"install failed: {resp.status_code} {resp.text[:300]}")
        return elapsed

    async def baseline(self) -> float:
        t0 = time.perf_counter()
        await self.temporal.execute_workflow(
            EmptyWorkflow.run, "x", id=f"bench-empty-{uuid.uuid4().hex}", task_queue=self.queue
        )
        return time.perf_counter() - t0


def _build_python_sample(out_dir: Path) -> Path:
    app = out_dir / "hello-src"
    shutil.copytree(REPO / "examples" / "hello", app, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    subprocess.run(
        [sys.executable, str(REPO / "sdk" / "python" / "build.py"), str(app)], check=True, capture_output=True
    )
    manifest = json.loads((app / "manifest.json").read_text())
    manifest["publisher"], manifest["name"] = PUBLISHER, "com.bench.pyhello"
    (app / "manifest.json").write_text(json.dumps(manifest))
    return app


async def run(args: argparse.Namespace) -> tuple[list[Row], str]:
    """Measure; returns the summary rows and this module's own report."""
    root = Path(tempfile.mkdtemp(prefix="extplane-bench-"))
    stack = Stack(root / "stack", with_apps=True, auto_ports=True)
    try:
        info = await asyncio.to_thread(stack.up)  # Stack is sync (it runs its own event loop)
        temporal = await Client.connect(info.env["EXT_TEMPORAL_ADDRESS"])
        bench = Bench(info.env["EXT_API_URL"], info.env["EXT_ADMIN_TOKEN"], temporal, root)
        async with Worker(
            temporal, task_queue=bench.queue, workflows=[EmptyWorkflow], activities=[noop_activity]
        ):
            await bench.trust()
            tiny = TINY_WASM.read_bytes()
            for _ in range(3):  # warm-up: connections, worker caches
                await bench.baseline()
            publishes, base_p = [], []
            for i in range(args.publishes):
                publishes.append(await bench.publish(_bundle_dir(root, "com.bench.tiny", f"1.0.{i}", tiny)))
                base_p.append(await bench.baseline())
            installs, base_i = [], []
            for i in range(args.installs):
                installs.append(await bench.install(f"bench-{i}", "com.bench.tiny", "1.0.0"))
                base_i.append(await bench.baseline())
            sample = None
            if not args.skip_python_sample:
                sample = await bench.publish(_build_python_sample(root))
        rows = [
            ("empty workflow + 1 activity (floor)", base_i + base_p, None),
            (f"install via API -> active (n={len(installs)})", installs, base_i),
            (f"publish tiny component via API (n={len(publishes)})", publishes, base_p),
        ]
        out = [f"{'figure':<46} {'p50 ms':>9} {'p95 ms':>9} {'ratio p50':>10}"]
        summary: list[Row] = []
        for name, values, base in rows:
            p50, p95 = _pct(values, 0.5) * 1e3, _pct(values, 0.95) * 1e3
            ratio = f"{statistics.median(values) / statistics.median(base):.1f}x" if base else "1.0x"
            out.append(f"{name:<46} {p50:>9.0f} {p95:>9.0f} {ratio:>10}")
            summary.append(
                Row(
                    f"{name} (p50)",
                    statistics.median(values) * 1e3,
                    "ms",
                    statistics.median(base) * 1e3 if base else None,
                    baseline_figure="empty workflow" if base else "",
                    extra={"p95_ms": p95, "n": len(values)},
                )
            )
        if sample is not None:
            out.append(f"{'publish Python-SDK sample (1 run, compiles)':<46} {sample * 1e3:>9.0f}")
            summary.append(Row("publish Python-SDK sample via API (1 run, compiles)", sample * 1e3, "ms"))
        await bench.http.aclose()
        return summary, "\n".join(out)
    finally:
        await asyncio.to_thread(stack.down)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--installs", type=int, default=50)
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--skip-python-sample", action="store_true")
    sys.stdout.write(asyncio.run(run(parser.parse_args()))[1] + "\n")


def rows(installs: int = 50, publishes: int = 10, skip_python_sample: bool = False) -> list[Row]:
    """The figures of this module, for `python -m bench` (measured as `main` measures them)."""
    args = argparse.Namespace(installs=installs, publishes=publishes, skip_python_sample=skip_python_sample)
    return asyncio.run(run(args))[0]


if __name__ == "__main__":
    main()
