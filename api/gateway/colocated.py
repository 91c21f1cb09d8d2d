"""The gateway's runner hop in co-located mode (EXT_RUNNER_URL=local:): guests run in this process.

The only module of `api/` that imports `runner/` (ARCHITECTURE.md, import table): it adapts
runner.local's executor to the interface of runner_client.RunnerPool, so the gateway's handling of
an answer, a refusal (503 runner_busy from the runner's own admission) or a timeout does not depend
on where the guest ran.

`send` hands the runner the envelope as a model and takes a handler's answer as its Outcome
(runner.local.LocalRunner.call), mapped by the same rules as a remote runner's JSON
(`handler_answer`); refusals and failures come back as the runner's answer bytes and are mapped
by `map_runner_reply` like a remote runner's.
"""

from __future__ import annotations

from api.gateway.errors import HandlerTimeout
from api.gateway.http import handler_answer
from api.gateway.runner_client import RunnerReply
from core.errors import InvalidInput
from core.settings import RunnerSettings
from registry.envelope import CallFields, PreparedInstall
from runner.local import LocalRunner, Outcome


class ColocatedRunner:
    def __init__(self, local: LocalRunner) -> None:
        self._local = local

    @classmethod
    def open(cls, settings: RunnerSettings | None = None) -> ColocatedRunner:
        """On the gateway's event loop, at startup; the runner's settings come from EXT_ as for
        `python -m runner`."""
        return cls(LocalRunner.open(settings if settings is not None else RunnerSettings()))

    async def execute(
        self,
        envelope: bytes,
        *,
        request_id: str,
        timeout_s: float,
        tenant: str = "",
        headers: bytes = b"",
    ) -> RunnerReply:
        # request_id and tenant travel inside the envelope; headers are the HTTP hop's extra lines.
        del request_id, tenant, headers
        try:
            status, body = await self._local.execute(envelope, timeout_s=timeout_s)
        except TimeoutError:
            raise HandlerTimeout(f"no answer from the runner within {timeout_s:.1f}s") from None
        return RunnerReply(status, body)

    async def send(
        self, install: PreparedInstall, call: CallFields, *, timeout_s: float, tenant: str
    ) -> RunnerReply:
        del tenant  # inside the envelope, as for execute
        try:
            envelope = install.model(call)
        except ValueError as exc:  # never for the gateway's calls: it checks the same bounds first
            raise InvalidInput(f"the call is outside the envelope's bounds: {_first_error(exc)}") from None
        try:
            reply = await self._local.call(envelope, timeout_s=timeout_s)
        except TimeoutError:
            raise HandlerTimeout(f"no answer from the runner within {timeout_s:.1f}s") from None
        if isinstance(reply, Outcome):
            answer = handler_answer(reply.status, reply.headers, reply.body, reply.fuel_consumed)
            return RunnerReply(200, b"", answer)
        return RunnerReply(*reply)

    def metrics_text(self) -> bytes:
        return self._local.metrics_text()

    async def aclose(self) -> None:
        await self._local.aclose()


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)  # pydantic's ValidationError: name the field, not the value
    if callable(errors):
        first = errors(include_url=False, include_input=False)[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
