"""One Engine per process, one fresh Store per request: the execution of a single envelope.

`Runtime.run(envelope)` is synchronous and runs on an executor thread:

    admission (caller) -> load (LRU) -> Store(fuel, epoch deadline, memory limit, WASI capture)
        -> instantiate -> handler(request) -> convert response -> classify any failure

The deadline is a wall-clock time the caller (runner._app) fixes at admission, so time spent queued
for a thread counts; runner._deadline checks it, and the caller's cancel flag, at every epoch tick.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass

import wasmtime
from wasmtime import Store, WasiConfig
from wasmtime.component import Linker

from core.settings import RunnerSettings
from runner import _adapter
from runner._adapter import LiftTooLarge, call_bounded, field, record
from runner._deadline import DeadlineCheck, Ticker
from runner._debug import DebugSink, OutputCapture
from runner._host import HostServices, define_host
from runner._invocation import Cancel, Invocation, bound
from runner._limits import store_budget
from runner._loader import Loaded
from runner._traps import classify
from runner._wasi_block import never_block
from runner.compile import new_engine
from runner.errors import DeadlineExceeded, GuestTrap, InvalidEnvelope, ResponseTooLarge, RunnerError
from schema.capabilities import effective_capabilities
from schema.envelope import ExecuteRequest

MAX_RESPONSE_HEADERS = 256


@dataclass(frozen=True, kw_only=True)
class Outcome:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: RunnerError | None
    duration_ms: float
    fuel_consumed: int


class Runtime:
    def __init__(self, settings: RunnerSettings) -> None:
        _adapter.install()
        self.settings = settings
        self.engine = new_engine()
        self.linker = Linker(self.engine)
        # WASI p2 for guests whose toolchain imports it (componentize-py). No wasi:http: all outbound
        # HTTP goes through `http.fetch` and its egress policy. Default WasiCtx: no preopened
        # directories, no environment; its socket check denies every address and name lookup is off.
        self.linker.add_wasip2()
        never_block(self.linker)  # a WASI sleep must not outlive the call's deadline
        self.ticker = Ticker(self.engine, settings.epoch_tick_ms / 1000.0)
        self.deadline_check = DeadlineCheck(settings.epoch_tick_ms / 1000.0)

    def link(self, services: HostServices) -> None:
        define_host(self.linker, services)

    def close(self) -> None:
        self.ticker.stop()

    def budgets(self, envelope: ExecuteRequest) -> tuple[int, int, float]:
        """(fuel, memory bytes, timeout seconds) after clamping by operator maxima."""
        s = self.settings
        timeout_ms = min(envelope.limits.timeout_ms, s.max_timeout_ms)
        fuel = envelope.limits.fuel if envelope.limits.fuel is not None else timeout_ms * s.fuel_per_ms
        fuel = min(fuel, s.max_fuel)
        memory = min(envelope.limits.memory_mb, s.max_memory_mb) * 1024 * 1024
        return fuel, memory, timeout_ms / 1000.0

    def run(
        self,
        loaded: Loaded,
        envelope: ExecuteRequest,
        sink: DebugSink,
        *,
        deadline: float | None = None,
        cancel: Cancel | None = None,
    ) -> Outcome:
        """Execute one envelope. `deadline` (time.monotonic()) defaults to now + the timeout; setting
        `cancel.is_set()` ends the guest at its next check (runner._deadline.CHECK_S)."""
        started = time.perf_counter()
        try:
            caps = effective_capabilities(envelope.capabilities.granted)
        except ValueError as exc:
            raise InvalidEnvelope(str(exc)) from None
        request = _request_record(envelope, self.settings.max_request_bytes)
        fuel, memory, timeout_s = self.budgets(envelope)
        limit = self.settings.max_output_bytes
        inv = Invocation(
            envelope=envelope,
            caps=caps,
            deadline=deadline if deadline is not None else time.monotonic() + timeout_s,
            cancel=cancel if cancel is not None else threading.Event(),
            sink=sink,
            stdout=OutputCapture(limit),
            stderr=OutputCapture(limit),
            max_log_events=self.settings.max_log_events,
        )
        store = Store(self.engine)
        if loaded.wants_wasi:
            wasi = WasiConfig()
            wasi.stdout_custom = inv.stdout.write
            wasi.stderr_custom = inv.stderr.write
            store.set_wasi(wasi)
        store.set_fuel(fuel)
        self.deadline_check.arm(store)
        # memory_mb is the store's total (linear memories plus tables), not a per-memory size.
        store_budget(memory).apply(store)
        error: RunnerError | None = None
        status, body = 0, b""
        headers: list[tuple[str, str]] = []
        try:
            with bound(inv):
                try:
                    instance = self.linker.instantiate(store, loaded.component)
                    handler = instance.get_func(store, loaded.handler)
                    if handler is None:
                        raise wasmtime.WasmtimeError("handler export is not a function")
                    response = call_bounded(
                        handler,
                        store,
                        request,
                        max_bytes=_lift_bound(self.settings.max_response_bytes),
                        max_items=MAX_RESPONSE_HEADERS,
                        signature=loaded.signature,
                    )
                except LiftTooLarge as exc:
                    error = ResponseTooLarge(
                        f"more than {MAX_RESPONSE_HEADERS} response headers"
                        if exc.items
                        else f"response headers and body exceed {self.settings.max_response_bytes} bytes"
                    )
                except Exception as exc:
                    error = _stopped(inv) or classify(exc, guest_output=inv.guest_output())
                else:
                    status, headers, body = self._response(response, inv.deadline)
        except RunnerError as exc:
            error = exc
        finally:
            consumed = fuel - _fuel_left(store)
            inv.flush_output()
            if error is not None:
                inv.event("error", "runner", f"{error.code.value}: {error.message}")
            del store
        return Outcome(
            status=status,
            headers=headers,
            body=body,
            error=error,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            fuel_consumed=consumed,
        )

    def _response(self, response: object, deadline: float) -> tuple[int, list[tuple[str, str]], bytes]:
        # The lift was bounded (call_bounded): what is converted here is at most about the cap.
        status = int(field(response, "status"))
        headers = [(str(field(h, "name")), str(field(h, "value"))) for h in field(response, "headers")]
        text: str = field(response, "body")
        if field(response, "body_base64"):
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise GuestTrap(
                    "handler set body-base64 but the body is not base64", trap_code="bad_response"
                ) from None
        else:
            body = text.encode("utf-8")
        # Headers travel to the tenant like the body (and cost the same on the way): one cap for both.
        size = len(body) + sum(len(n.encode()) + len(v.encode()) for n, v in headers)
        limit = self.settings.max_response_bytes
        if size > limit:
            raise ResponseTooLarge(f"response headers and body exceed {limit} bytes")
        # The epoch deadline stops wasm only; a response finished being converted after it is late.
        if time.monotonic() > deadline:
            raise DeadlineExceeded("the guest ran past its deadline")
        if not 100 <= status <= 599:
            status = 500
        return status, headers, body


def _stopped(inv: Invocation) -> RunnerError | None:
    """The failure of a guest that runner._deadline ended, from why it did (not from the message)."""
    if inv.stopped == "deadline":
        return DeadlineExceeded("the guest ran past its deadline", trap_code="interrupt")
    if inv.stopped == "cancelled":
        return DeadlineExceeded("the caller stopped waiting: the guest was ended", trap_code="cancelled")
    return None


def _lift_bound(limit: int) -> int:
    """String bytes a response may lift: the cap, with room for a body at the cap sent as base64."""
    return limit + limit // 3 + 4


def _fuel_left(store: Store) -> int:
    try:
        return store.get_fuel()
    except wasmtime.WasmtimeError:
        return 0


def _request_record(envelope: ExecuteRequest, max_bytes: int) -> object:
    req = envelope.request
    try:
        raw = base64.b64decode(req.body_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEnvelope("request.body_b64 is not base64") from None
    if len(raw) > max_bytes:
        raise InvalidEnvelope(f"request body exceeds {max_bytes} bytes")
    try:
        body, is_b64 = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        body, is_b64 = req.body_b64, True
    return record(
        method=req.method,
        path=req.path,
        query=req.query,
        headers=[record(name=n, value=v) for n, v in req.headers],
        body=body,
        body_base64=is_b64,
    )
