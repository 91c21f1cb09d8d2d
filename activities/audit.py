"""The audit activity: one `audit_events` row per workflow step, idempotent on (workflow, run, step)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities._errors import activity_errors
from registry import write
from schema.payloads.audit import AuditInput, AuditResult


class AuditActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="record_audit")
    async def record_audit(self, inp: AuditInput) -> AuditResult:
        with activity_errors():
            inserted = await write.insert_audit_event(
                self.pool,
                workflow_id=inp.workflow_id,
                run_id=inp.run_id,
                step=inp.step,
                actor=inp.actor,
                action=inp.action,
                tenant_id=inp.tenant_id,
                extension_name=inp.extension_name,
                version=inp.version,
                content_hash=inp.content_hash,
                before=inp.before,
                after=inp.after,
            )
        return AuditResult(inserted=inserted)
