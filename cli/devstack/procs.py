"""Process helpers: free ports, detached starts with log files, readiness polling, stopping by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A dev-stack service could not be started or reached; the message says which and where its log is."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_port(preferred: int | None) -> int:
    """The preferred port when it is free, else any free one (so two stacks never collide)."""
    if preferred is not None and not port_open("127.0.0.1", preferred):
        return preferred
    return free_port()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def private_log(path: Path) -> None:
    """Create `path` readable by its owner only, or narrow an existing one to that: a process log holds
    whatever the process printed, and the dev stack's processes hold its secrets. (The directory keeps
    its mode: embedded Postgres runs as another user and must reach its log there.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    path.chmod(0o600)


def start_detached(
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start a process in its own session (it outlives `extctl`), output appended to `log` (mode 0600)."""
    private_log(log)
    full_env = {**os.environ, **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # argv is built by us, never from user input
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    return proc.pid


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up{_log_hint(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise StackError(f"{what} not ready after {timeout:.0f}s{_log_hint(log)}")


def _log_hint(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f"; see {log}" + (": " + " | ".join(tail) if tail else "")


def stop_pid(pid: int | None, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL after `timeout`."""
    if not pid_alive(pid):
        return
    assert pid is not None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
