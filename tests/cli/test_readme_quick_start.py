"""The README quick start, executed as written: its shell block runs in bash (`set -euo pipefail`) in a
directory laid out like a fresh checkout after `make install`, with nothing of this session's services
in the environment, so `extctl dev up` starts an embedded stack of its own (Postgres, Redis, Temporal,
worker, runner, API, gateway) and the block's last line, `extctl dev down`, stops it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.devstack.stack import Stack
from tests.support.readme import ROOT, quick_start_script

# It builds the Python sample (~10-30 s), starts a whole stack and runs ~40 extctl commands, each a
# fresh interpreter, plus the workflows behind them.
pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(900)]

# What a checkout holds that the quick start reads (after `make install` made .venv).
CHECKOUT = (".venv", "examples", "sdk", "schema", "Makefile", "README.md")


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "checkout"
    work.mkdir()
    for name in CHECKOUT:
        (work / name).symlink_to(ROOT / name)
    yield work
    Stack(work / ".extplane").down()  # the block failed before its own `extctl dev down`


def _user_env(home: Path) -> dict[str, str]:
    """A user's shell: no EXT_* variable (neither this session's services nor its tokens)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXT_", "VIRTUAL_ENV", "PYTEST"))}
    env["HOME"] = str(home)
    return env


def test_the_readme_quick_start_runs_as_written(checkout: Path, tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + quick_start_script()
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout,
        env=_user_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=840,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"the quick start stopped (exit {proc.returncode}):\n{tail}"
    out = proc.stdout
    # Its results, as the README's comments promise them.
    assert '{"hello":"world","tenant":"acme","version":"1.0.0"}' in out
    assert '{"counter":1}' in out
    assert '"version": "1.1.0"' in out and '"rate_limit_burst": 40' in out  # status --json
    assert "hello world" in out, "the debug stream showed the guest's log"
    assert '"greeting": "hello"' in out and '"secrets_version": 2' in out
    assert "com.extplane.hello 1.1.0 uninstalled" in out
    revoked = out[out.index("\nrevoked ed25519:") :]
    assert "com.extplane.hello@1.0.0" in revoked and "com.extplane.hello@1.1.0" in revoked
    assert "stopped:" in out, "extctl dev down ran"
    assert (checkout / "hello" / "dist" / "main.wasm").is_file(), "built in the copy, not the checkout"
