"""The fault stacks' app ports: one block per xdist worker, outside the kernel's ephemeral range, so
a port another worker picked (or the kernel handed to any bind(0)) is never one of this worker's."""

from __future__ import annotations

import socket

from tests.faults import harness
from tests.faults.harness import APP_PORT_BASE, APP_PORT_BLOCK, app_port


def _ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        return int(f.read().split()[0])


def test_workers_draw_from_disjoint_blocks_below_the_ephemeral_range() -> None:
    blocks = {}
    for n in range(30):
        port = app_port(f"gw{n}")
        block = (port - APP_PORT_BASE) // APP_PORT_BLOCK
        assert block == n, f"gw{n} drew {port} from block {block}"
        blocks[n] = port
    assert max(blocks.values()) < _ephemeral_low()


def test_picks_within_a_worker_differ_and_skip_a_port_in_use() -> None:
    worker = "gw7"
    harness._next_port.pop(worker, None)
    first = app_port(worker)
    with socket.socket() as held:
        held.bind(("127.0.0.1", first + 1))
        held.listen()
        second = app_port(worker)
    assert second not in (first, first + 1)
