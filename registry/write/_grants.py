"""Install consent inside the change's transaction: the rules of schema.install_rules applied to the
locked install row, refusals raised as domain errors before anything is written."""

from __future__ import annotations

from typing import Any

import asyncpg

from core.errors import Conflict, InvalidInput
from registry.write._install_state import Conn
from schema.errors import ErrorCode
from schema.install_rules import (
    GrantDecision,
    GrantSet,
    change_grant,
    consent_details,
    consent_message,
    install_grant,
)
from schema.payloads.install import ApplyInstallChangeInput


def granted_now(row: asyncpg.Record) -> GrantSet:
    return GrantSet.of(row["granted_capabilities"], row["granted_egress"])


def for_install(req: ApplyInstallChangeInput, manifest: dict[str, Any]) -> GrantDecision:
    """The grant of an install (first or repeated at its version): invalid_request on a bad `deny`."""
    decision = install_grant(manifest, req.deny)
    if decision.problem:
        raise InvalidInput(decision.problem, details={"field": "deny"})
    return decision


def for_version_change(
    req: ApplyInstallChangeInput, row: asyncpg.Record, target: asyncpg.Record
) -> GrantDecision:
    """The grant after moving `row` to `target`: invalid_request on a bad `deny`/`accept`, 409
    consent_required (with the diff in details) when the target adds what nobody accepted."""
    decision = change_grant(
        row["manifest"], granted_now(row), target["manifest"], accept=req.accept, deny=req.deny
    )
    if decision.problem:
        raise InvalidInput(decision.problem, details={"field": "accept/deny"})
    if decision.missing:
        raise Conflict(
            consent_message(req.extension, target["version"], decision.missing),
            code=ErrorCode.CONSENT_REQUIRED,
            details=consent_details(target["version"], decision),
        )
    return decision


def grant_columns(decision: GrantDecision) -> dict[str, Any]:
    return {
        "granted_capabilities": list(decision.granted.capabilities),
        "granted_egress": list(decision.granted.egress),
    }


def consent_record(req: ApplyInstallChangeInput, decision: GrantDecision) -> dict[str, Any]:
    """What the audit row of an install/upgrade/rollback records about consent."""
    return {
        "requested": decision.requested.as_json(),
        "granted": decision.granted.as_json(),
        "added": decision.diff.as_json(),
        "accepted": (req.accept or GrantSet()).as_json(),
        "denied": (req.deny or GrantSet()).as_json(),
    }


async def history_moves(conn: Conn, install_id: Any) -> list[tuple[str, str | None, str | None]]:
    """The install's history as (operation, from_version, to_version) in revision order."""
    rows = await conn.fetch(
        """SELECT h.operation, fv.version AS from_version, tv.version AS to_version
           FROM install_history h
           LEFT JOIN versions fv ON fv.id = h.from_version_id
           LEFT JOIN versions tv ON tv.id = h.to_version_id
           WHERE h.install_id = $1 ORDER BY h.revision""",
        install_id,
    )
    return [(r["operation"], r["from_version"], r["to_version"]) for r in rows]
