"""EXT_CPUS on a real runner process: the process and every one of its threads (event loop, epoch
ticker, guest pool, debug publisher, framed connections) run on the named CPU only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from core.affinity import parse_cpus
from tests.runner.runner_helpers import FIXTURES, envelope, free_port, manifest, publish, start_runner
from tests.runner.test_frame_threads import FrameConn

pytestmark = pytest.mark.integration


def thread_cpus(pid: int) -> dict[str, frozenset[int]]:
    """Each thread's name and the CPUs it may run on, from /proc."""
    found: dict[str, frozenset[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        found[f"{fields['Name'].strip()}/{task.name}"] = parse_cpus(fields["Cpus_allowed_list"].strip())
    return found


async def test_a_pinned_runner_runs_every_thread_on_its_cpu(
    runner_db_url: str, tmp_path_factory: pytest.TempPathFactory, work_dir: Path
) -> None:
    cpu = max(os.sched_getaffinity(0))
    frame_port = free_port()
    proc = start_runner(
        tmp_path_factory.mktemp("pinned"), runner_db_url, cpus=str(cpu), frame_port=str(frame_port)
    )
    try:
        chash = publish(proc.data_dir, (FIXTURES / "echo.wasm").read_bytes(), manifest(), work_dir)
        async with proc.client() as client:
            resp = await client.post("/v1/execute", json=envelope(chash, "/echo", body=b"hi"))
            assert resp.status_code == 200, resp.text
        conn = FrameConn(frame_port)  # a framed connection's thread starts after the pinning too
        try:
            conn.hello()
            conn.send(envelope(chash, "/echo", body=b"hi"))
            assert (await asyncio.to_thread(conn.answer))[0] == 200
            threads = thread_cpus(proc.proc.pid)
        finally:
            conn.close()
        assert len(threads) > 4  # loop, ticker, guest pool, frames: more than the main thread
        assert {name: cpus for name, cpus in threads.items() if cpus != {cpu}} == {}
    finally:
        proc.stop()
