"""Install lifecycle mutations: one transaction per change, serialized per (tenant, extension) by the
install entity workflow and, in the database, by the install row lock.

Each change bumps `installs.revision` and appends `install_history` with the workflow id; a retry of the
same workflow's change finds that row and returns the recorded outcome instead of changing twice.
No-ops (install of the installed version with no other config or denials, enable of an active install,
limits or the debug flag set to what they already are) change nothing.

Grants follow schema.install_rules (registry/write/_grants.py): install grants what the version
requests minus `deny`; an upgrade or rollback that adds anything needs `accept` for exactly that, else
Conflict consent_required, raised before anything is written.

Schedules follow schema.schedules: a version's schedules must fit the operator's SchedulePolicy
(schedule_limit_exceeded), and an upgrade or rollback that removes an endpoint a schedule calls needs
that schedule in `drop_schedules` (schedule_endpoint_dropped). Every result names the schedules
the install declared before and after the change, for the workflow to sync the Temporal Schedules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from core.db import map_db_errors
from core.errors import Conflict, InvalidInput, NotFound
from registry.write import _grants, _schedules
from registry.write._install_state import (
    Conn,
    append_history,
    extension_id,
    find_version,
    lock_install,
    recorded_change,
    reload,
    snapshot,
    validate_config,
)
from schema.errors import ErrorCode
from schema.install_rules import GrantDecision, ran_before, requested, rollback_target
from schema.payloads.install import (
    ApplyInstallChangeInput,
    ApplyInstallChangeResult,
    InstallChangeResult,
    InstallOperation,
)
from schema.schedules import SchedulePolicy

Op = InstallOperation


def _result(
    req: ApplyInstallChangeInput, row: asyncpg.Record | None, *, changed: bool, previous: str = ""
) -> InstallChangeResult:
    return InstallChangeResult(
        request_id=req.request_id,
        operation=req.operation,
        tenant_id=req.tenant_id,
        extension=req.extension,
        install_id=str(row["id"]) if row else "",
        revision=row["revision"] if row else 0,
        version=row["version"] if row else "",
        content_hash=row["content_hash"] if row else "",
        previous_version=previous,
        status=row["status"] if row else "uninstalled",
        config_version=row["config_version"] if row else 0,
        secrets_version=row["secrets_version"] if row else 0,
        changed=changed,
        workflow_id=req.workflow_id,
        requested=requested(row["manifest"]) if row else None,
        granted=_grants.granted_now(row) if row else None,
    )


async def apply_install_change(
    pool: asyncpg.Pool, req: ApplyInstallChangeInput, *, schedules: SchedulePolicy | None = None
) -> ApplyInstallChangeResult:
    """Apply one change (anything but set_secrets). Raises NotFound, Conflict or InvalidInput."""
    if req.drop_schedules is not None and req.operation not in (Op.UPGRADE, Op.ROLLBACK):
        raise InvalidInput(f"{req.operation.value} does not take drop_schedules (only upgrade and rollback)")
    policy = schedules or SchedulePolicy()
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        applied = await _apply(conn, req, policy)
        return await _schedules.with_schedule_names(conn, req, applied)


async def _apply(
    conn: Conn, req: ApplyInstallChangeInput, policy: SchedulePolicy
) -> ApplyInstallChangeResult:
    if req.operation is Op.SET_SECRETS:
        raise InvalidInput("set_secrets goes through registry.write.store_secrets")
    if req.accept is not None and req.operation not in (Op.UPGRADE, Op.ROLLBACK):
        raise InvalidInput(f"{req.operation.value} does not take accept (only upgrade and rollback)")
    if req.deny is not None and req.operation not in (Op.INSTALL, Op.UPGRADE, Op.ROLLBACK):
        raise InvalidInput(f"{req.operation.value} does not take deny")
    ext_id = await extension_id(conn, req.extension)
    if ext_id is None:
        if req.operation is Op.UNINSTALL:
            return ApplyInstallChangeResult(change=_result(req, None, changed=False))
        raise NotFound(f"extension {req.extension} is not published", details={"name": req.extension})
    row = await lock_install(conn, req.tenant_id, ext_id)
    if row is not None:
        done = await recorded_change(conn, row["id"], req.workflow_id, req.operation.value)
        if done is not None:
            return ApplyInstallChangeResult(
                change=_result(req, row, changed=True, previous=done["from_version"] or ""),
                after=snapshot(row),
            )
    if req.operation is Op.INSTALL:
        return await _install(conn, req, ext_id, row, policy)
    if row is None:
        if req.operation is Op.UNINSTALL:
            return ApplyInstallChangeResult(change=_result(req, None, changed=False))
        raise NotFound(
            f"{req.extension} is not installed in tenant {req.tenant_id}",
            details={"tenant_id": req.tenant_id, "name": req.extension},
        )
    if req.operation is Op.UNINSTALL:
        # Config, secrets, data key, storage records and history go with the row (ON DELETE CASCADE).
        await conn.execute("DELETE FROM installs WHERE id = $1", row["id"])
        # The id and a newer revision of the deleted install let gateways drop what they cached.
        gone = replace(
            _result(req, None, changed=True, previous=row["version"]),
            install_id=str(row["id"]),
            revision=row["revision"] + 1,
        )
        return ApplyInstallChangeResult(change=gone, before=snapshot(row))
    return await _modify(conn, req, ext_id, row, policy)


async def _install(
    conn: Conn, req: ApplyInstallChangeInput, ext_id: Any, row: asyncpg.Record | None, policy: SchedulePolicy
) -> ApplyInstallChangeResult:
    target = await find_version(conn, ext_id, req.extension, req.version)
    if row is not None:
        if row["version_id"] == target["id"]:
            return await _reinstall(conn, req, row)
        raise Conflict(
            f"{req.extension} is installed at {row['version']} in tenant {req.tenant_id}; use upgrade",
            details={"installed": row["version"]},
        )
    decision = _grants.for_install(req, target["manifest"])
    config = validate_config(req.config, target["manifest"]) if req.config is not None else None
    await _schedules.check_target(conn, req, ext_id, target["manifest"], policy)
    install_id = await conn.fetchval(
        """INSERT INTO installs (tenant_id, extension_id, version_id, status, granted_capabilities,
                                 granted_egress, revision, config_version)
           VALUES ($1, $2, $3, 'active', $4, $5, 1, $6) RETURNING id""",
        req.tenant_id,
        ext_id,
        target["id"],
        list(decision.granted.capabilities),
        list(decision.granted.egress),
        1 if config is not None else 0,
    )
    if config is not None:
        await conn.execute(
            "INSERT INTO install_config (install_id, version, config, workflow_id) VALUES ($1, 1, $2, $3)",
            install_id,
            config,
            req.workflow_id,
        )
    await append_history(
        conn,
        install_id=install_id,
        revision=1,
        operation=req.operation.value,
        from_version_id=None,
        to_version_id=target["id"],
        workflow_id=req.workflow_id,
    )
    after = await reload(conn, install_id)
    return ApplyInstallChangeResult(
        change=_result(req, after, changed=True), after=_with_consent(snapshot(after), req, decision)
    )


async def _reinstall(
    conn: Conn, req: ApplyInstallChangeInput, row: asyncpg.Record
) -> ApplyInstallChangeResult:
    """Install at the installed version is declarative: a given config replaces the config (validated),
    a given deny replaces the grant (requested minus deny); what is omitted stays. (Given secrets
    replace the secret set in the workflow's next step.) Nothing given, or the same again: a no-op."""
    sets: dict[str, Any] = {}
    decision: GrantDecision | None = None
    if req.config is not None:
        config = validate_config(req.config, row["manifest"])
        if config != await _current_config(conn, row):
            sets["config_version"] = await _new_config_version(conn, req, row, config)
    if req.deny is not None:
        decision = _grants.for_install(req, row["manifest"])
        if decision.granted != _grants.granted_now(row):
            sets.update(_grants.grant_columns(decision))
    return await _commit(conn, req, row, sets, row["version_id"], decision)


async def _new_config_version(
    conn: Conn, req: ApplyInstallChangeInput, row: asyncpg.Record, config: dict[str, Any]
) -> int:
    version: int = row["config_version"] + 1
    await conn.execute(
        "INSERT INTO install_config (install_id, version, config, workflow_id) VALUES ($1, $2, $3, $4)",
        row["id"],
        version,
        config,
        req.workflow_id,
    )
    return version


def _with_consent(
    after: dict[str, Any] | None, req: ApplyInstallChangeInput, decision: GrantDecision | None
) -> dict[str, Any] | None:
    if after is None or decision is None:
        return after
    return {**after, "consent": _grants.consent_record(req, decision)}


async def _rollback_target(conn: Conn, req: ApplyInstallChangeInput, row: asyncpg.Record) -> str:
    """`req.version` if the install ran it before, else the previous version per install_history
    (schema.install_rules.rollback_target: versions rolled back from are skipped)."""
    moves = await _grants.history_moves(conn, row["id"])
    if req.version:
        if not ran_before(moves, req.version):
            raise Conflict(
                f"{req.extension} has never run {req.version} in tenant {req.tenant_id}; "
                "rollback goes only to a version the install ran before (use upgrade)",
                code=ErrorCode.VERSION_NOT_IN_HISTORY,
                details={"version": req.version},
            )
        return req.version
    previous = rollback_target(moves)
    if previous is None:
        raise Conflict(
            f"{row['version']} is the only version this install has run; name a version with --to",
            details={"version": row["version"]},
        )
    return previous


async def _current_config(conn: Conn, row: asyncpg.Record) -> dict[str, Any] | None:
    if row["config_version"] == 0:
        return None
    config: dict[str, Any] | None = await conn.fetchval(
        "SELECT config FROM install_config WHERE install_id = $1 AND version = $2",
        row["id"],
        row["config_version"],
    )
    return config


async def _modify(
    conn: Conn, req: ApplyInstallChangeInput, ext_id: Any, row: asyncpg.Record, policy: SchedulePolicy
) -> ApplyInstallChangeResult:
    op = req.operation
    sets: dict[str, Any] = {}
    to_version_id = row["version_id"]
    decision: GrantDecision | None = None
    if op in (Op.UPGRADE, Op.ROLLBACK):
        name = await _rollback_target(conn, req, row) if op is Op.ROLLBACK else req.version
        target = await find_version(conn, ext_id, req.extension, name)
        if target["id"] != row["version_id"]:
            # Consent first: the operator learns everything the target adds before fixing anything else.
            decision = _grants.for_version_change(req, row, target)
            # The config carries over, so it must suit the target version's schema: otherwise the guest
            # would run with a config its own manifest refuses. Fix it first (or disable to stop now).
            current = await _current_config(conn, row)
            if current is not None:
                validate_config(
                    current,
                    target["manifest"],
                    subject=f"the install's config (version {row['config_version']}) for "
                    f"{req.extension}@{target['version']}",
                )
            await _schedules.check_target(conn, req, ext_id, target["manifest"], policy, row["manifest"])
            to_version_id = target["id"]
            sets["version_id"] = target["id"]
            sets.update(_grants.grant_columns(decision))
            if row["status"] == "quarantined":
                sets["status"] = "active"  # moved off the revoked version
    elif op is Op.ENABLE:
        if row["status"] != "active":
            if row["version_status"] != "verified":
                raise InvalidInput(
                    f"{req.extension}@{row['version']} is {row['version_status']}; "
                    "upgrade or roll back instead",
                    code=ErrorCode.VERSION_NOT_INSTALLABLE,
                )
            sets["status"] = "active"
    elif op is Op.DISABLE:
        if row["status"] == "active":
            sets["status"] = "disabled"
    elif op is Op.SET_LIMITS:
        if req.rate_limit_rps is not None and req.rate_limit_rps <= 0:
            raise InvalidInput("rate_limit_rps must be > 0")
        if req.rate_limit_burst is not None and req.rate_limit_burst < 1:
            raise InvalidInput("rate_limit_burst must be >= 1")
        if (row["rate_limit_rps"], row["rate_limit_burst"]) != (req.rate_limit_rps, req.rate_limit_burst):
            sets["rate_limit_rps"] = req.rate_limit_rps
            sets["rate_limit_burst"] = req.rate_limit_burst
    elif op is Op.SET_DEBUG:
        if not isinstance(req.debug_enabled, bool):
            raise InvalidInput("set_debug needs debug_enabled (true or false)")
        if row["debug_enabled"] != req.debug_enabled:
            sets["debug_enabled"] = req.debug_enabled
    elif op is Op.SET_CONFIG:
        given = req.config if req.config is not None else {}
        if req.config_merge:
            # Merged here, under the row lock: two concurrent merges cannot lose each other's keys.
            given = {**(await _current_config(conn, row) or {}), **given}
        config = validate_config(given, row["manifest"])
        sets["config_version"] = await _new_config_version(conn, req, row, config)
    else:
        raise InvalidInput(f"unknown install operation {op!r}")
    return await _commit(conn, req, row, sets, to_version_id, decision)


async def _commit(
    conn: Conn,
    req: ApplyInstallChangeInput,
    row: asyncpg.Record,
    sets: dict[str, Any],
    to_version_id: Any,
    decision: GrantDecision | None,
) -> ApplyInstallChangeResult:
    """Write `sets` with revision + 1 and a history row; nothing to set is a no-op."""
    op = req.operation
    if not sets:
        return ApplyInstallChangeResult(change=_result(req, row, changed=False), after=snapshot(row))
    revision = row["revision"] + 1
    sets["revision"] = revision
    assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(sets, start=2))
    await conn.execute(
        f"UPDATE installs SET {assignments}, updated_at = now() WHERE id = $1", row["id"], *sets.values()
    )
    await append_history(
        conn,
        install_id=row["id"],
        revision=revision,
        operation=op.value,
        from_version_id=row["version_id"],
        to_version_id=to_version_id,
        workflow_id=req.workflow_id,
    )
    after = await reload(conn, row["id"])
    return ApplyInstallChangeResult(
        change=_result(req, after, changed=True, previous=row["version"]),
        before=snapshot(row),
        after=_with_consent(snapshot(after), req, decision),
    )
