"""The schedule rules of an install change (schema.schedules), inside its registry transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.errors import Conflict, InvalidInput
from registry.write._install_state import Conn
from schema.errors import ErrorCode
from schema.payloads.install import ApplyInstallChangeInput, ApplyInstallChangeResult
from schema.schedules import SchedulePolicy, check_limits, declared, dropped_schedules


async def _others_in_tenant(conn: Conn, tenant_id: str, extension_id: Any) -> int:
    """Schedules the tenant's other installs declare (whatever their status: a disabled install's
    Schedules exist, paused, and come back on enable)."""
    count: int = await conn.fetchval(
        """SELECT COALESCE(sum(jsonb_array_length(COALESCE(v.manifest -> 'schedules', '[]'::jsonb))), 0)
           FROM installs i JOIN versions v ON v.id = i.version_id
           WHERE i.tenant_id = $1 AND i.extension_id <> $2""",
        tenant_id,
        extension_id,
    )
    return count


async def check_target(
    conn: Conn,
    req: ApplyInstallChangeInput,
    extension_id: Any,
    target_manifest: dict[str, Any],
    policy: SchedulePolicy,
    current_manifest: dict[str, Any] | None = None,
) -> None:
    """Refuse a move to `target_manifest` that drops a scheduled endpoint without the operator's
    drop_schedules (Conflict) or breaks an operator limit (InvalidInput)."""
    if current_manifest is not None:
        dropped = dropped_schedules(current_manifest, target_manifest)
        unasked = [name for name in dropped if name not in (req.drop_schedules or [])]
        if unasked:
            raise Conflict(
                f"{req.extension}@{target_manifest.get('version', '')} no longer declares the endpoint of "
                f"schedule(s) {', '.join(unasked)}; re-send with drop_schedules naming them to remove them",
                code=ErrorCode.SCHEDULE_ENDPOINT_DROPPED,
                details={"schedules": unasked},
            )
    schedules = declared(target_manifest)
    if not schedules:
        return
    breach = check_limits(
        schedules, policy=policy, others_in_tenant=await _others_in_tenant(conn, req.tenant_id, extension_id)
    )
    if breach is not None:
        raise InvalidInput(breach.message, code=ErrorCode.SCHEDULE_LIMIT_EXCEEDED, details=breach.details)


async def _names(conn: Conn, extension: str, version: str) -> list[str]:
    if not version:
        return []
    manifest: dict[str, Any] | None = await conn.fetchval(
        """SELECT v.manifest FROM versions v JOIN extensions e ON e.id = v.extension_id
           WHERE e.name = $1 AND v.version = $2""",
        extension,
        version,
    )
    return [s.name for s in declared(manifest)]


async def with_schedule_names(
    conn: Conn, req: ApplyInstallChangeInput, applied: ApplyInstallChangeResult
) -> ApplyInstallChangeResult:
    """`applied` with the schedule names of the version before (the previous one, or the current one
    when the change kept the version) and after the change (none after an uninstall)."""
    change = applied.change
    before = await _names(conn, req.extension, change.previous_version or change.version)
    after = await _names(conn, req.extension, change.version)
    return replace(applied, schedules_before=before, schedules_after=after)
