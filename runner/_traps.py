"""Classify why a guest stopped. Component traps arrive as a bare `WasmtimeError` whose message (plus
a wasm backtrace) is all there is, so classification is by message text; the markers below are the
ones wasmtime 50 prints. Unknown failures still become a `GuestTrap`: nothing escapes unclassified.
"""

from __future__ import annotations

import re

import wasmtime

from runner.errors import (
    DeadlineExceeded,
    FuelExhausted,
    GuestTrap,
    MemoryExhausted,
    ModuleRejected,
    RunnerError,
)

# (marker in the message, trap code) checked in order; the first match wins.
_TRAP_MARKERS: tuple[tuple[str, str], ...] = (
    ("all fuel consumed", "out_of_fuel"),
    ("wasm trap: interrupt", "interrupt"),
    ("call stack exhausted", "stack_overflow"),
    ("out of bounds memory access", "memory_out_of_bounds"),
    ("integer divide by zero", "integer_division_by_zero"),
    ("integer overflow", "integer_overflow"),
    ("indirect call type mismatch", "bad_signature"),
    ("undefined element", "table_out_of_bounds"),
    ("null reference", "null_reference"),
    ("unreachable", "unreachable"),
    ("cannot enter component instance", "cannot_enter_component"),
    ("fuel allocated for hostcalls has been exhausted", "hostcall_fuel"),
)
# An allocation failure inside the guest, as reported by its language runtime on stderr, or the
# limiter refusing the initial memory at instantiation. (A bare C guest whose memory.grow fails and
# which then aborts is indistinguishable from any other abort: it classifies as a plain trap.)
_OOM_MARKERS = (
    "exceeds memory limits",
    "exceeds table limits",
    "memory allocation of",
    "MemoryError",
    "out of memory",
    "failed to grow memory",
)


# The store limiter refusing a component at instantiation because it declares more memories, tables or
# core instances than runner/_limits.py allows ("resource limit exceeded: memory count too high at 17"):
# a property of the component, so the same answer as a component outside the world.
_COUNT_MARKER = re.compile(r"resource limit exceeded: (memory|table|instance) count too high")


def trap_code(message: str) -> str | None:
    for marker, code in _TRAP_MARKERS:
        if marker in message:
            return code
    return None


def classify(exc: BaseException, *, guest_output: str = "") -> RunnerError:
    """Map a failure of instantiate/call to the runner's error tree.

    Args:
        exc: what `Linker.instantiate` or the handler call raised: a WasmtimeError for traps, or the
            original Python exception a host function raised (wasmtime re-raises it).
        guest_output: the guest's captured stderr/log text, consulted for out-of-memory reports.
    """
    if isinstance(exc, RunnerError):
        return exc
    if not isinstance(exc, wasmtime.WasmtimeError | wasmtime.Trap):
        return GuestTrap(f"host function failed: {type(exc).__name__}", trap_code="host_error")
    message = str(exc)
    counted = _COUNT_MARKER.search(message)
    if counted is not None:
        what = {"memory": "linear memories", "table": "tables", "instance": "core instances"}[counted[1]]
        return ModuleRejected(f"the component declares more {what} than the runner allows")
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    # The useful line is the "Caused by" one ("wasm trap: ..."); the first is a backtrace header.
    first = next((ln for ln in reversed(lines) if "wasm trap:" in ln), lines[0] if lines else "wasm trap")
    code = trap_code(message)
    if code == "out_of_fuel":
        return FuelExhausted("the guest used up its fuel budget", trap_code=code)
    if code == "interrupt":
        return DeadlineExceeded("the guest ran past its deadline", trap_code=code)
    if any(m in message for m in _OOM_MARKERS) or (
        code in ("unreachable", None) and any(m in guest_output for m in _OOM_MARKERS)
    ):
        return MemoryExhausted("the guest ran out of memory (limit reached)", trap_code=code)
    return GuestTrap(f"guest trapped: {_trim(first)}", trap_code=code)


def _trim(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
