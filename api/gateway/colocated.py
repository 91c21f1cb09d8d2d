"""The gateway's runner hop in co-located mode (EXT_RUNNER_URL=local:): guests run in this process.

The only module of `api/` that imports `runner/` (ARCHITECTURE.md, import table): it adapts
runner.local's executor to the interface of runner_client.RunnerPool, so the gateway's handling of
an answer, a refusal (503 runner_busy from the runner's own admission) or a timeout does not depend
on where the guest ran.
"""

from __future__ import annotations

from api.gateway.errors import HandlerTimeout
from api.gateway.runner_client import RunnerReply
from core.settings import RunnerSettings
from runner.local import LocalRunner


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

    def metrics_text(self) -> bytes:
        return self._local.metrics_text()

    async def aclose(self) -> None:
        await self._local.aclose()
