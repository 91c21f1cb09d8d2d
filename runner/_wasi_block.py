"""WASI p2 pollables that never block a guest's thread.

wasmtime-wasi's `[method]pollable.block` and `poll` wait inside the host, and epoch interruption
reaches only wasm code. A guest's `time.sleep(3600)` (a monotonic-clock pollable) used to hold its
thread and admission slot far past its deadline; docs/security.md has the finding. Both are shadowed
here: they return at once, with every pollable reported ready. A sleep therefore returns early, and
anything that waits in a loop spins in wasm code instead, where fuel and the deadline stop it.
Nothing else needs to wait: the streams a guest gets (captured stdout and stderr, an empty stdin) are
always ready, and sockets are denied.
"""

from __future__ import annotations

from wasmtime._store import Storelike  # the package re-exports it without __all__
from wasmtime.component import Linker, ResourceAny

# The interface version wasmtime 50's add_wasip2 defines. Guests import older 0.2.x versions, which
# the linker resolves to this one by semver. After a wasmtime upgrade that changes it, this would
# only add an unused instance: tests/runner/test_wasi_block.py fails then.
WASI_POLL = "wasi:io/poll@0.2.12"


def never_block(linker: Linker) -> None:
    """Shadow the blocking calls of `linker`'s WASI (after `add_wasip2`)."""
    linker.allow_shadowing = True
    try:
        with linker.root() as root, root.add_instance(WASI_POLL) as poll:
            poll.add_func("[method]pollable.block", _block)
            poll.add_func("poll", _poll)
    finally:
        linker.allow_shadowing = False


def _block(store: Storelike, pollable: ResourceAny) -> None:
    pollable.drop(store)  # ends the borrow: a host call must not return with one outstanding


def _poll(store: Storelike, pollables: list[ResourceAny]) -> list[int]:
    for pollable in pollables:
        pollable.drop(store)
    return list(range(len(pollables)))
