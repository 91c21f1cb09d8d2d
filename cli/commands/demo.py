"""`extctl demo` (what `make demo` runs): the whole platform end to end on the local stack.

It brings the dev stack up, then does what an extension author and an operator would do, each step
through the same `extctl` command a person would type (so the demo exercises the public interface,
not internals): build the sample `examples/hello` with the Python SDK, generate a signing key, pack,
sign, trust the key, publish, install for tenant `demo`, and call it through the gateway. Every step
is idempotent, so running `make demo` again reuses what is there. The stack keeps running.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cli.devstack.procs import StackError
from cli.devstack.stack import Stack, read_env_file
from cli.output import emit, fail
from core.errors import ExtplaneError

app = typer.Typer()

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "hello"
SAMPLE_NAME = "com.extplane.hello"
TENANT = "demo"


class DemoStepFailed(RuntimeError):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


def _extctl(env: dict[str, str], *args: str, json_out: bool = True) -> Any:
    argv = [sys.executable, "-m", "cli", *(["--json"] if json_out else []), *args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise DemoStepFailed("extctl " + " ".join(a for a in args if not a.startswith("/")), reason)
    if not json_out:
        return proc.stdout
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.stdout


def _sources_digest(app_dir: Path) -> str:
    """What the built component depends on: the app, the SDK and the WIT world."""
    h = hashlib.sha256()
    for base in (app_dir, REPO / "sdk" / "python" / "extplane_sdk", REPO / "schema" / "wit"):
        for path in sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            if path.parent.name == "dist":
                continue
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _build_sample(work: Path) -> Path:
    """Copy the sample into the demo dir and componentize it (~10 s once; cached by source digest)."""
    target = work / "hello"
    stamp = target / ".built-from"
    digest = _sources_digest(SAMPLE)
    target.mkdir(parents=True, exist_ok=True)
    for src in SAMPLE.iterdir():
        if src.is_file() and src.suffix in {".py", ".json"}:
            (target / src.name).write_bytes(src.read_bytes())
    shutil.rmtree(target / "ui", ignore_errors=True)
    if (SAMPLE / "ui").is_dir():
        shutil.copytree(SAMPLE / "ui", target / "ui")
    # Versions are immutable: a changed sample is a new version. Semver build metadata from the
    # source digest keeps re-runs of `make demo` idempotent on this machine's registry.
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = f"{manifest['version']}+{digest[:8]}"
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    wasm = target / "dist" / "main.wasm"
    if wasm.exists() and stamp.exists() and stamp.read_text() == digest:
        return target
    proc = subprocess.run(
        [sys.executable, str(REPO / "sdk" / "python" / "build.py"), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DemoStepFailed("build examples/hello", (proc.stderr.strip().splitlines() or ["failed"])[-1])
    stamp.write_text(digest)
    return target


def _run(root: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    info = Stack(root).up()
    env = {**os.environ, **read_env_file(root / "dev.env")}
    work = root / "demo"
    work.mkdir(parents=True, exist_ok=True)

    sample = _build_sample(work)
    keys = work / "keys"
    if not (keys / "signing.key").exists():
        _extctl(env, "keys", "generate", "--out", str(keys))
    bundle, sig = work / "hello.tar.zst", work / "hello.sig"
    packed = _extctl(env, "bundle", "pack", str(sample), "-o", str(bundle))
    _extctl(env, "bundle", "sign", str(bundle), "--key", str(keys / "signing.key"), "-o", str(sig))
    _extctl(env, "trust", "add", str(keys / "signing.pub"), "--publisher", "extplane")
    published = _extctl(env, "publish", str(bundle), "--signature", str(sig))
    version = json.loads((sample / "manifest.json").read_text())["version"]
    ref = f"{SAMPLE_NAME}@{version}"
    try:
        installed = _extctl(env, "install", ref, "--tenant", TENANT)
    except DemoStepFailed as exc:
        if "error: conflict:" not in str(exc):
            raise
        # An earlier demo installed an older build of the sample: move the install forward.
        installed = _extctl(env, "upgrade", ref, "--tenant", TENANT)
    hello = _extctl(env, "call", SAMPLE_NAME, "/hello", "--tenant", TENANT, json_out=False)
    counter = _extctl(
        env, "call", SAMPLE_NAME, "/counter", "--tenant", TENANT, "--method", "POST", json_out=False
    )
    return {
        "gateway": info.env["EXT_GATEWAY_URL"],
        "api": info.env["EXT_API_URL"],
        "temporal_ui": info.env["EXT_TEMPORAL_UI_URL"],
        "admin_token": info.env["EXT_ADMIN_TOKEN"],
        "tenant": TENANT,
        "extension": SAMPLE_NAME,
        "version": version,
        "content_hash": packed.get("content_hash") if isinstance(packed, dict) else packed,
        "publish": published,
        "install": installed,
        "call_hello": hello.strip(),
        "call_counter": counter.strip(),
        "seconds": round(time.monotonic() - t0, 1),
    }


@app.command("demo")
def demo(root: Path = typer.Option(Path(".extplane"), "--root")) -> None:
    """Start the stack, publish, install and call the sample extension; print URLs and the admin token."""
    try:
        out = _run(root)
    except DemoStepFailed as exc:
        fail("demo_failed", f"{exc} (logs: {root / 'logs'})")
    except (StackError, ExtplaneError, OSError) as exc:
        fail("dev_stack_failed", str(exc))
    lines = [
        f"extplane demo done in {out['seconds']}s; the stack keeps running (`extctl dev down` stops it).",
        f"  published    {out['extension']} {out['version']}  {out['content_hash']}",
        f"  installed    for tenant '{out['tenant']}'",
        f"  GET  /api/ext/{out['extension']}/hello   -> {out['call_hello'][:200]}",
        f"  POST /api/ext/{out['extension']}/counter -> {out['call_counter'][:200]}",
        f"  gateway      {out['gateway']}",
        f"  extension UI {out['gateway']}/ext/{out['extension']}  (admin token, tenant {out['tenant']})",
        f"  operator API {out['api']}  (OpenAPI at {out['api']}/docs)",
        f"  Temporal UI  {out['temporal_ui']}  (every change above is a workflow there)",
        f"  admin token  {out['admin_token']}",
        f"  try: .venv/bin/extctl call {out['extension']} /counter --tenant {out['tenant']} --method POST",
    ]
    emit(out, human="\n".join(lines))
