"""One execution from envelope bytes to answer bytes, whichever hop carried it.

    parse -> admission -> (load + Runtime.run on a guest thread) -> release -> (status, answer JSON)

Two ways in, with the same admission, deadlines, limits, metrics and answers:

* `run(raw, gone)` on the event loop, for `POST /v1/execute`: the guest runs on the executor pool and
  `gone` (a future that completes when the caller has left) cancels a queued place or the guest;
* `run_here(raw, departure)` on the caller's own thread, for the framed hop (runner._frames): the guest
  runs on that thread, with no event loop and no thread hand-off between reading the frame and writing
  the answer (docs/performance.md measured the runner's loop and hand-off as most of a cheap call's
  CPU). `departure.is_set()` says whether the caller left; it is asked while queued and at the
  guest's deadline checks.
* `start(request)` then, unless that already answered, `finish(entry, gone)`, for the co-located mode
  (runner.local): `start` runs a call that runner._inline allows on the event loop's own thread, with
  no task and no hand-off; any other call goes on as `run` would. Both take the envelope as bytes or
  as the model the gateway built (no JSON between two parts of one process), and answer a guest
  that ran and answered with its `Outcome` itself; `render` makes it the answer bytes. Refusals and
  failures are answer bytes in every mode.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from runner._admission import Admission, Place
from runner._debug import DebugSink
from runner._engine import Outcome, Runtime
from runner._inline import InlinePolicy
from runner._invocation import Cancel as Departure
from runner._loader import ComponentCache, Loaded
from runner._metrics import Metrics
from runner.errors import InvalidEnvelope, RunnerBusy, RunnerError
from schema.envelope import ExecError, ExecMetrics, ExecuteRequest, ExecuteResponse

log = structlog.get_logger(__name__)

Answer = tuple[int, bytes]
# In-process callers (start/finish): a guest's successful Outcome, or the answer bytes of anything else.
Reply = Answer | Outcome


@dataclass(frozen=True, slots=True)
class Admitted:
    """An admitted call (maybe queued for a thread)."""

    envelope: ExecuteRequest
    tenant: str
    deadline: float  # time.monotonic()
    place: Place | None  # None: it has a thread already


class Executor:
    def __init__(
        self,
        *,
        runtime: Runtime,
        cache: ComponentCache,
        pool: ThreadPoolExecutor,
        admission: Admission,
        metrics: Metrics,
        sink: DebugSink,
        max_envelope: int,
        inline: InlinePolicy | None = None,
    ) -> None:
        self.runtime = runtime
        self.cache = cache
        self.pool = pool
        self.admission = admission
        self._metrics = metrics
        self._sink = sink
        self.max_envelope = max_envelope
        self._inline = inline
        self._ok = metrics.executions.labels("ok")  # bound once: labels() looks it up every time

        def cache_counts() -> tuple[int, int]:
            stats = cache.stats()
            return stats.hits, stats.misses

        metrics.watch(
            admitted=lambda: admission.admitted,
            waiting=lambda: admission.waiting,
            cache_bytes=lambda: cache.stats().bytes,
            cache_counts=cache_counts,
        )

    async def run(self, raw: bytes, gone: asyncio.Future[Any]) -> Answer:
        """One execution from the event loop; `gone` completes when the caller has left."""
        entry = self._enter(raw, blocking=False)
        if not isinstance(entry, Admitted):
            return entry
        return self.render(await self.finish(entry, gone))

    def render(self, reply: Reply) -> Answer:
        """The answer bytes of a reply (`POST /v1/execute`'s 200 body for an Outcome)."""
        if not isinstance(reply, Outcome):
            return reply
        body = ExecuteResponse(
            status=reply.status,
            headers=reply.headers,
            body_b64=base64.b64encode(reply.body).decode(),
            metrics=_metrics_of(reply),
        )
        return 200, body.model_dump_json().encode()

    def start(self, request: bytes | ExecuteRequest) -> Admitted | Reply:
        """Parse (unless given the model) and admit on the event loop: the reply when refused or run
        inline (runner._inline), else the admitted call for `finish`."""
        entry = self._enter(request, blocking=False)
        inline = self._inline
        if not isinstance(entry, Admitted) or entry.place is not None or inline is None:
            return entry
        if not inline.allows(entry.envelope):
            return entry
        # On the loop's own thread, so nothing can see the caller leave: the deadline alone ends it.
        try:
            outcome, cpu_s, wall_s = self._execute_timed(entry.envelope, entry.deadline, _NEVER)
        except RunnerError as exc:
            return self.answer(exc)
        except Exception:
            return self._failed(entry.envelope)
        finally:
            self._released(entry.tenant, _NEVER)
        inline.observe(entry.envelope, cpu_s=cpu_s, wall_s=wall_s, inline=True)
        self._metrics.inline.inc()
        return self._settle(outcome)

    async def finish(self, entry: Admitted, gone: asyncio.Future[Any]) -> Reply:
        """The rest of `run`: wait for a thread if queued, run the guest on the pool."""
        if entry.place is not None:
            _on_disconnect(gone, entry.place.cancel)
            try:
                await self.admission.wait(entry.tenant, entry.place, entry.deadline)
            except RunnerBusy as exc:
                return self._left_queue(exc) or self.answer(exc)  # a caller that left is not read
        cancel = threading.Event()
        # The guest ends at its next deadline check; the thread stays busy (and admitted) until then.
        _on_disconnect(gone, cancel.set)
        try:
            if self._inline is None:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._execute, entry.envelope, entry.deadline, cancel
                )
            else:
                outcome, cpu_s, wall_s = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._execute_timed, entry.envelope, entry.deadline, cancel
                )
                self._inline.observe(entry.envelope, cpu_s=cpu_s, wall_s=wall_s, inline=False)
        except RunnerError as exc:
            return self.answer(exc)
        except Exception:
            return self._failed(entry.envelope)
        finally:
            self._released(entry.tenant, cancel)
        return self._settle(outcome)

    def run_here(self, raw: bytes, departure: Departure) -> Answer | None:
        """One execution on the calling thread; None when the caller left (nothing to answer)."""
        entry = self._enter(raw, blocking=True)
        if not isinstance(entry, Admitted):
            return entry
        if entry.place is not None:
            try:
                self.admission.wait_blocking(entry.tenant, entry.place, entry.deadline, departure.is_set)
            except RunnerBusy as exc:
                return self._left_queue(exc)
        try:
            outcome = self._execute(entry.envelope, entry.deadline, departure)
        except RunnerError as exc:
            return self.answer(exc)
        except Exception:
            return self._failed(entry.envelope)
        finally:
            self._released(entry.tenant, departure)
        if departure.is_set():
            return None
        return self.render(self._settle(outcome))

    def answer(self, error: RunnerError, outcome: Outcome | None = None) -> Answer:
        self._metrics.executions.labels(error.code.value).inc()
        return error.http_status, error_body(error, outcome)

    def _enter(self, raw: bytes | ExecuteRequest, *, blocking: bool) -> Admitted | Answer:
        """Parse and admit: the admitted call (maybe queued), or the answer refusing it."""
        envelope = raw if isinstance(raw, ExecuteRequest) else self._parse(raw)
        if not isinstance(envelope, ExecuteRequest):
            return envelope
        tenant = envelope.context.tenant_id
        # The deadline starts at admission: time spent queued for a thread counts.
        deadline = time.monotonic() + self.runtime.budgets(envelope)[2]
        try:
            place = self.admission.enter(tenant, blocking=blocking)
        except RunnerBusy as exc:
            return self._shed(exc)
        return Admitted(envelope, tenant, deadline, place)

    def _left_queue(self, exc: RunnerBusy) -> Answer | None:
        """A queued call that got no thread: shed (its deadline passed), or None when its caller left."""
        if exc.reason != "abandoned":
            return self._shed(exc)
        self._metrics.abandoned.labels("queued").inc()
        return None

    def _parse(self, raw: bytes) -> ExecuteRequest | Answer:
        if len(raw) > self.max_envelope:
            return self.answer(InvalidEnvelope(f"envelope larger than {self.max_envelope} bytes"))
        try:
            return ExecuteRequest.model_validate_json(raw)
        except ValidationError as exc:
            return self.answer(InvalidEnvelope(f"invalid envelope: {exc.errors(include_url=False)[:3]}"))

    def _execute(self, envelope: ExecuteRequest, deadline: float, cancel: Departure) -> Outcome:
        loaded, deadline = self._load(envelope, deadline)
        return self.runtime.run(loaded, envelope, self._sink, deadline=deadline, cancel=cancel)

    def _execute_timed(
        self, envelope: ExecuteRequest, deadline: float, cancel: Departure
    ) -> tuple[Outcome, float, float]:
        """`_execute`, and the CPU and wall time its thread spent running it (loading aside), for
        runner._inline."""
        loaded, deadline = self._load(envelope, deadline)
        started, cpu = time.monotonic(), time.thread_time()
        outcome = self.runtime.run(loaded, envelope, self._sink, deadline=deadline, cancel=cancel)
        return outcome, time.thread_time() - cpu, time.monotonic() - started

    def _load(self, envelope: ExecuteRequest, deadline: float) -> tuple[Loaded, float]:
        loading = time.monotonic()
        loaded = self.cache.get(envelope.context.content_hash, artifacts=envelope.artifacts)
        # Loading a version (deserializing, or compiling on a first call) is not the guest's time.
        return loaded, deadline + time.monotonic() - loading

    def _released(self, tenant: str, cancel: Departure) -> None:
        self.admission.release(tenant)
        if cancel.is_set():
            self._metrics.abandoned.labels("running").inc()

    def _failed(self, envelope: ExecuteRequest) -> Answer:
        # A runner bug, not a guest failure: still a classified, JSON answer for the gateway.
        log.exception("execute_failed", request_id=envelope.context.request_id)
        return self.answer(RunnerError("the runner failed to execute the request"))

    def _settle(self, outcome: Outcome) -> Reply:
        """Count a finished run; a failed one becomes its error answer."""
        metrics = self._metrics
        metrics.duration.observe(outcome.duration_ms / 1000.0)
        metrics.fuel.inc(outcome.fuel_consumed)
        if outcome.error is not None:
            return self.answer(outcome.error, outcome)
        self._ok.inc()
        return outcome

    def _shed(self, error: RunnerBusy) -> Answer:
        self._metrics.busy.inc()
        self._metrics.shed.labels(error.reason).inc()
        return self.answer(error)


class _Never:
    """The departure of a call run inline: never seen (see Executor.start)."""

    def is_set(self) -> bool:
        return False


_NEVER = _Never()


def _on_disconnect(gone: asyncio.Future[Any], action: Callable[[], object]) -> None:
    """Run `action` when the watcher saw the client leave (not when it is cancelled at the end)."""
    gone.add_done_callback(lambda f: None if f.cancelled() else action())


def error_body(error: RunnerError, outcome: Outcome | None = None) -> bytes:
    body = ExecuteResponse(
        error=ExecError(code=error.code.value, message=error.message), metrics=_metrics_of(outcome)
    )
    return body.model_dump_json().encode()


def _metrics_of(outcome: Outcome | None) -> ExecMetrics | None:
    if outcome is None:
        return None
    return ExecMetrics(duration_ms=round(outcome.duration_ms, 3), fuel_consumed=outcome.fuel_consumed)
