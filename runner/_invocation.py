"""Per-request state that host functions read: the envelope, the grants, the deadline, the captures.

wasmtime hands a host function a `StoreContext`, not our Store, so the invocation travels in a
thread-local: one execution runs start to finish on one executor thread, and its host calls (and the
epoch-deadline check of runner._deadline) run synchronously on that same thread.

`cancel` says whether the caller has gone (the gateway gave up); `stopped` records
why the deadline check ended the guest, so the failure is classified from it and not from a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runner._debug import DebugEvent, DebugSink, Level, OutputCapture, Stream, cut, now
from schema.capabilities import Capability
from schema.envelope import ExecuteRequest

_current = threading.local()
Stop = Literal["deadline", "cancelled"]


class Cancel(Protocol):
    """Whether the caller has gone: a threading.Event set from the event loop (HTTP hop), or a
    watch on the caller's socket (runner._frames), asked at each deadline check."""

    def is_set(self) -> bool: ...


@dataclass(kw_only=True)
class Invocation:
    envelope: ExecuteRequest
    caps: frozenset[Capability]
    deadline: float  # time.monotonic() value
    sink: DebugSink
    stdout: OutputCapture
    stderr: OutputCapture
    max_log_events: int
    log_events: int = 0
    denied: list[str] = field(default_factory=list)
    host_failure: BaseException | None = None
    guest_reports: list[str] = field(default_factory=list)
    cancel: Cancel = field(default_factory=threading.Event)
    stopped: Stop | None = None

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def should_stop(self, now: float) -> Stop | None:
        """Whether the guest must end now: its caller left, or its deadline passed (kept in `stopped`)."""
        if self.stopped is None:
            if self.cancel.is_set():
                self.stopped = "cancelled"
            elif now >= self.deadline:
                self.stopped = "deadline"
        return self.stopped

    def event(self, level: Level, stream: Stream, message: str, *, truncated: bool = False) -> None:
        text, was_cut = cut(message)
        ctx = self.envelope.context
        self.sink.emit(
            DebugEvent(
                ts=now(),
                level=level,
                stream=stream,
                tenant=ctx.tenant_id,
                extension=ctx.extension,
                install_id=ctx.install_id,
                request_id=ctx.request_id,
                version=ctx.version,
                content_hash=ctx.content_hash,
                message=text,
                truncated=truncated or was_cut,
            )
        )

    def flush_output(self) -> None:
        """Publish what the guest wrote to stdout/stderr as one event per stream."""
        for stream, capture, level in (("stdout", self.stdout, "info"), ("stderr", self.stderr, "warn")):
            if capture.total:
                self.event(level, stream, capture.text(), truncated=capture.truncated)  # type: ignore[arg-type]

    def guest_output(self) -> str:
        return self.stderr.text() + "\n" + "\n".join(self.guest_reports)


def current() -> Invocation:
    inv = active()
    if inv is None:
        raise RuntimeError("host function called outside an execution")
    return inv


def active() -> Invocation | None:
    """The invocation bound to this thread, if any."""
    inv: Invocation | None = getattr(_current, "inv", None)
    return inv


@contextmanager
def bound(inv: Invocation) -> Iterator[Invocation]:
    _current.inv = inv
    try:
        yield inv
    finally:
        _current.inv = None
