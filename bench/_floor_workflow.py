"""The control-plane floor: an empty workflow with one no-op activity. Its own module because the
workflow sandbox re-imports a workflow's module, and the bench module imports httpx and the stack."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop_activity(value: str) -> str:
    return value


@workflow.defn(name="BenchEmpty")
class EmptyWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(
            noop_activity, value, start_to_close_timeout=timedelta(seconds=10)
        )
