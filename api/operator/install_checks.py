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
  say, gets its first answer from the workflow rather than a 404).

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
from schema.manifest import MAX_NAME_CHARS, valid_name, valid_version
from schema.payloads.install import InstallOperation, InstallRequest

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
