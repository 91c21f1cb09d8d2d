"""Headless Debian Chromium for the browser tests, driven by Playwright (the pip wheel bundles its node
driver; no browser is ever downloaded). When /usr/bin/chromium is missing and we are root, it is
installed with apt-get (once per machine: xdist workers wait on a file lock); otherwise the tests fail
with a message saying what to install — never a silent skip."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # root in a container: Chromium's own sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCK = Path("/tmp/extplane-chromium-install.lock")


def ensure_chromium() -> Path:
    """The Chromium binary, installed from Debian's archive if needed (root only)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `apt-get install -y chromium` as root (Debian's build; "
            "never `playwright install`)"
        )
    with LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install = ["apt-get", "install", "-y", "-qq", "chromium"]
            if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
                subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=True)
                done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"apt-get install chromium failed:\n{done.stderr[-2000:]}")
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM
