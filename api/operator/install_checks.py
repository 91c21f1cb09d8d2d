"""What an install change must pass before it is sent to the install entity workflow.

Update-with-start starts the entity `install/<tenant>/<extension>` when it is not running, and an entity
whose change was refused stays running until its idle timeout (a day): a fuzz run of malformed names
and `PUT .../installs/nosuch/config` left 30 behind. So the API refuses up front, from the registry,
what the workflow would refuse anyway:

* an extension name no manifest may have, or a version that is not semver: 400 invalid_request;
* a target version (install, upgrade, rollback `--to`) that is not published: 404 not_found;
* installing a version that is published but not installable (revoked): 409 version_not_installable;
* any other change of an extension that is not installed in the tenant: 404 not_found, unless the
  running entity remembers the request's Idempotency-Key (a retry of an uninstall that succeeded,
  say, gets its first answer from the workflow rather than a 404);
* a rollback `--to` a version the install never ran: 409 version_not_in_history;
* a bad `deny` (a default capability, or what the version does not request): 400 invalid_request;
  an upgrade or rollback whose target asks for more than the install is granted without the operator's
  `accept` for exactly that: 409 consent_required, the diff in `details` (schema.install_rules). This
  is also the preview: send the change without `accept` to learn what it would add.
* an upgrade or rollback whose target no longer declares the endpoint of a schedule the install has,
  and whose `drop_schedules` does not name it: 409 schedule_endpoint_dropped, the schedules in
  `details.schedules` (schema.schedules; checked after consent, as the registry does).

The workflow still decides (the registry can change in between); these checks only keep a request that
cannot apply from starting anything. Tenant ids are checked earlier, by `Principal.require_tenant`.
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from api.operator import control
from core.errors import Conflict, InvalidInput, NotFound
from registry import read, read_operator
from schema.errors import ErrorCode
from schema.install_rules import (
    GrantSet,
    change_grant,
    consent_details,
    consent_message,
    install_grant,
    ran_before,
    rollback_target,
)
from schema.manifest import MAX_NAME_CHARS, valid_name, valid_version
from schema.payloads.install import InstallOperation, InstallRequest
from schema.schedules import dropped_schedules

Op = InstallOperation
_TARGETS = frozenset({Op.INSTALL, Op.UPGRADE, Op.ROLLBACK})


async def check_change(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    extension: str,
    request: InstallRequest,
    *,
    keyed: bool,
) -> None:
    """Raise InvalidInput / NotFound / Conflict for a change that cannot apply (nothing is started).

    `keyed`: the request id came from the caller's Idempotency-Key (a generated one is never a retry).
    """
    if not valid_name(extension):
        # Not echoed: the text is whatever the caller sent.
        raise InvalidInput(
            "extension name must be a lowercase reverse-domain name like com.acme.hello "
            f"(at most {MAX_NAME_CHARS} characters)",
            details={"field": "extension"},
        )
    target = request.version if request.operation in _TARGETS else ""
    if target and not valid_version(target):
        raise InvalidInput("version must be a semantic version like 1.2.0", details={"field": "version"})
    installed = await read_operator.install_exists(pool, tenant_id, extension)
    if (
        not installed
        and keyed
        and await control.install_remembers(client, tenant_id, extension, request.request_id)
    ):
        return  # a retry: the workflow answers it with its first result
    if not installed and request.operation is not Op.INSTALL:
        raise NotFound(
            f"{extension} is not installed in tenant {tenant_id!r}",
            details={"tenant_id": tenant_id, "name": extension},
        )
    if target:
        found = await read.get_version(pool, extension, target)
        if found is None:
            raise NotFound(
                f"{extension}@{target} is not published", details={"name": extension, "version": target}
            )
        if not installed and request.operation is Op.INSTALL and found.status != "verified":
            raise Conflict(
                f"{extension}@{target} is {found.status} and cannot be installed",
                code=ErrorCode.VERSION_NOT_INSTALLABLE,
                details={"name": extension, "version": target, "status": found.status},
            )
        if request.operation is Op.INSTALL and request.deny is not None:
            # The installed version's request, when install names it again, is the same manifest.
            problem = install_grant(found.manifest, request.deny).problem
            if problem:
                raise InvalidInput(problem, details={"field": "deny"})
    if installed:
        await _check_grants(pool, tenant_id, extension, request)


async def _check_grants(pool: asyncpg.Pool, tenant_id: str, extension: str, request: InstallRequest) -> None:
    """The rollback target and the consent of a change of an installed extension."""
    if request.operation not in _TARGETS:
        return
    current = await read.resolve_install(pool, tenant_id, extension)
    if current is None:
        return  # uninstalled in between: the workflow answers
    if request.operation is Op.INSTALL:
        return  # `deny` was checked above; install never needs consent (it shows what it grants)
    target = request.version
    if request.operation is Op.ROLLBACK:
        moves = [
            (h.operation, h.from_version, h.to_version)
            for h in await read.install_history(pool, current.install_id)
        ]
        if target and not ran_before(moves, target):
            raise Conflict(
                f"{extension} has never run {target} in tenant {tenant_id}; "
                "rollback goes only to a version the install ran before (use upgrade)",
                code=ErrorCode.VERSION_NOT_IN_HISTORY,
                details={"version": target},
            )
        target = target or rollback_target(moves) or ""
    found = await read.get_version(pool, extension, target) if target else None
    if found is None or found.version == current.version:
        return  # no previous version, not published any more, or a no-op: the workflow answers
    decision = change_grant(
        current.manifest,
        GrantSet.of(current.granted_capabilities, current.granted_egress),
        found.manifest,
        accept=request.accept,
        deny=request.deny,
    )
    if decision.problem:
        raise InvalidInput(decision.problem, details={"field": "accept/deny"})
    if decision.missing:
        raise Conflict(
            consent_message(extension, found.version, decision.missing),
            code=ErrorCode.CONSENT_REQUIRED,
            details=consent_details(found.version, decision),
        )
    agreed = set(request.drop_schedules or [])
    unasked = [n for n in dropped_schedules(current.manifest, found.manifest) if n not in agreed]
    if unasked:
        raise Conflict(
            f"{extension}@{found.version} no longer declares the endpoint of schedule(s) "
            f"{', '.join(unasked)}; re-send with drop_schedules naming them to remove them",
            code=ErrorCode.SCHEDULE_ENDPOINT_DROPPED,
            details={"schedules": unasked},
        )
