"""Ending a guest at its wall-clock deadline, or as soon as its caller has gone.

A ticker thread increments the engine epoch every `epoch_tick_ms`. Every store is armed to reach its
epoch deadline one tick after it starts; wasmtime then calls the store's epoch-deadline callback
(`wasmtime_store_epoch_deadline_callback`: bound in wasmtime-py 50's `_bindings`, not wrapped by
`Store`), which runs on the executing thread and reads that thread's `Invocation`:

* its deadline has passed, or its caller went away (`Invocation.cancel`) → the call fails with an
  `extplane:` error, classified from `Invocation.stopped` (never from the message);
* otherwise → continue for as many ticks as are left before the deadline, at most `CHECK_S` worth,
  so a departed caller is noticed within about `CHECK_S`.

Why not "deadline = timeout / tick ticks": the ticker is a Python thread. On a loaded machine (GIL
held elsewhere, CPUs shared) each of its sleeps overshoots, and counted ticks drifted to 1.7x the
timeout (bench/deadlines.py). Comparing the clock at each check bounds the lateness by one tick plus
the wait for the GIL, however slow the ticker runs.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time

import wasmtime
from wasmtime import _ffi as ffi

from runner import _invocation

# How often a running guest looks at its cancel flag (and how far it may overshoot a cancel).
CHECK_S = 0.05
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE

_Callback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,  # wasmtime_error_t*: NULL continues, an error fails the call
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


class Ticker:
    """The engine's epoch clock: one daemon thread per process."""

    def __init__(self, engine: wasmtime.Engine, tick_s: float) -> None:
        self._engine = engine
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epoch-ticker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            self._engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def _fail(message: bytes) -> int:
    error = ffi.wasmtime_error_new(message)
    return ctypes.cast(error, ctypes.c_void_p).value or 0


class DeadlineCheck:
    """The epoch-deadline callback of every store of one Runtime (it must outlive them all)."""

    def __init__(self, tick_s: float) -> None:
        self._tick_s = tick_s
        self._max_ticks = max(1, math.ceil(CHECK_S / tick_s))
        self._callback = _Callback(self._on_deadline)

    def arm(self, store: wasmtime.Store) -> None:
        store.set_epoch_deadline(1)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)

    def _on_deadline(
        self,
        _context: object,
        _data: object,
        delta: ctypes._Pointer[ctypes.c_uint64],
        kind: ctypes._Pointer[ctypes.c_uint8],
    ) -> int:
        # An exception must not escape into wasmtime (ctypes would print it and return 0: continue).
        try:
            inv = _invocation.active()
            if inv is None:
                return _fail(b"extplane: no execution is bound to this thread")
            now = time.monotonic()
            if inv.should_stop(now):
                return _fail(b"extplane: execution stopped")
            ticks = math.ceil((inv.deadline - now) / self._tick_s)
            delta[0] = min(max(ticks, 1), self._max_ticks)
            kind[0] = _CONTINUE
            return 0
        except BaseException:
            return _fail(b"extplane: deadline check failed")
