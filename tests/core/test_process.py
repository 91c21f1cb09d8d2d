"""core.process: processes that used the Temporal client end with the status their work earned."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("body", "status", "stdout", "stderr"),
    [
        ("print('done', end='')", 0, "done", ""),
        ("raise SystemExit(3)", 3, "", ""),
        ("raise SystemExit('bad input: x')", 1, "", "bad input: x"),
        ("raise RuntimeError('boom')", 1, "", "RuntimeError: boom"),
        ("raise KeyboardInterrupt", 130, "", ""),
    ],
    ids=["ok", "exit-3", "exit-message", "exception", "interrupt"],
)
@pytest.mark.parametrize("bridge", [False, True], ids=["plain", "after-temporal"])
def test_run_main_keeps_the_status_and_output(
    body: str, status: int, stdout: str, stderr: str, bridge: bool
) -> None:
    proc = run(
        f"""
        import sys
        from core.process import note_temporal_bridge, run_main
        if {bridge}:
            note_temporal_bridge()
        def entry():
            sys.stdout.write("")  # buffered output must still arrive after os._exit
            {body}
        run_main(entry)
        """
    )
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == stdout
    assert stderr in proc.stderr


@pytest.mark.integration
def test_a_real_temporal_client_process_exits_cleanly(temporal_address: str) -> None:
    proc = run(
        f"""
        import asyncio
        from core.process import run_main, temporal_bridge_used
        from core.temporal import connect_temporal, register_search_attributes

        async def work():
            client = await connect_temporal({temporal_address!r})
            await register_search_attributes(client)

        def entry():
            asyncio.run(work())
            print("bridge", temporal_bridge_used())

        run_main(entry)
        """
    )
    assert (proc.returncode, proc.stdout) == (0, "bridge True\n"), proc.stderr
