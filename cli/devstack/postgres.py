"""Embedded PostgreSQL for machines without one: initdb + pg_ctl on a data dir under the stack root.

Binaries come from the `pgserver` wheel (a dependency, so a fresh machine has them) or, failing that,
from Debian's postgresql packages. Postgres refuses to run as root, so as root the cluster runs as the
`postgres` system user when it exists, else as a system user `extplane-pg` created on first use.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cli.devstack.procs import StackError, port_open, private_log, wait_until

PG_USER_FALLBACK = "extplane-pg"


def find_pg_bin() -> Path:
    candidates: list[Path] = []
    # find_spec, not import: importing pgserver touches the user runtime dir and warns.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    candidates.extend(debian)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    raise StackError("no PostgreSQL binaries found: install the pgserver wheel or Debian's postgresql")


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", PG_USER_FALLBACK):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER_FALLBACK],
        check=True,
        capture_output=True,
    )
    return PG_USER_FALLBACK


def _open_traversal(path: Path) -> None:
    """The postgres user must be able to reach the data dir through every parent directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    log: Path

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, user=user, check=False)

    def start(self, *, timeout: float = 30.0) -> None:
        bin_dir = find_pg_bin()
        user = _system_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pg_ctl appends to the log and keeps its mode: created here, owner-only.
        private_log(self.log)
        if user:
            _open_traversal(self.data_dir.resolve())
            shutil.chown(self.data_dir, user=user)
            shutil.chown(self.log, user=user)
        if not (self.pgdata / "PG_VERSION").exists():
            res = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                user,
            )
            if res.returncode != 0:
                raise StackError(f"initdb failed: {res.stderr.strip()[-400:]}")
        # TCP on loopback only: no Unix socket, whose path (data dir + name) can exceed the 107-byte
        # sun_path limit in deep directories. fsync off: this is a throwaway dev/test cluster.
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=200"
        )
        res = self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            user,
        )
        if res.returncode != 0:
            raise StackError(
                f"postgres failed to start on port {self.port}: {res.stderr.strip()[-300:]}; see {self.log}"
            )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=timeout, what="postgres", log=self.log)

    def stop(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        bin_dir = find_pg_bin()
        self._run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"], _system_user()
        )

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
