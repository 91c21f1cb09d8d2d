"""From an operator request to one change of the install entity workflow (schema.payloads.install).

`submit` is the one path every install route takes: scope and tenant checks; text the registry cannot
store refused at once; secrets sealed (core.codec.seal_secrets) so no plaintext enters Temporal; the
request id taken from the caller's Idempotency-Key (or a fresh uuid) and bound to a fingerprint of
the change (api/operator/fingerprint.py); the change vetted against the registry (install_checks) so
one that cannot apply starts no workflow; then update-with-start.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

from temporalio.client import Client

from api.auth import Principal
from api.operator import control, install_checks
from api.operator.deps import Resources
from api.operator.fingerprint import fingerprint
from core.codec import seal_secrets
from core.errors import InvalidInput, Unavailable
from core.storable import require_storable_config
from schema.install_rules import GrantSet
from schema.jsontext import unstorable
from schema.payloads.install import InstallChangeResult, InstallOperation, InstallRequest
from schema.payloads.secrets import SealedSecrets

IDEMPOTENCY_KEY_RE = r"^[A-Za-z0-9._:-]{1,128}$"
_KEY_RE = re.compile(IDEMPOTENCY_KEY_RE)


@dataclass(frozen=True, kw_only=True)
class Change:
    """What a route asks for; `secrets` in clear (sealed by `submit`, never sent like this)."""

    operation: InstallOperation
    version: str = ""
    config: dict[str, Any] | None = None
    secrets: dict[str, str] | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    debug_enabled: bool | None = None
    accept: GrantSet | None = None
    deny: GrantSet | None = None
    config_merge: bool = False
    drop_schedules: list[str] | None = None


def request_id(key: str | None) -> str:
    if key is None:
        return uuid.uuid4().hex
    if not _KEY_RE.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1..128 characters of [A-Za-z0-9._:-]")
    return key


def _seal(resources: Resources, secrets: dict[str, str]) -> SealedSecrets:
    if resources.keyring is None:
        raise Unavailable("the operator API has no master keyring (EXT_MASTER_KEYS); cannot seal secrets")
    return seal_secrets(resources.keyring, secrets)


def _check_text(change: Change) -> None:
    """Refuse what Postgres cannot store here (400), not after a workflow started: the registry write
    would refuse it too, but only once the caller is already waiting on the change."""
    if change.config is not None:
        require_storable_config(change.config)  # 400 invalid_config with the JSON path
    if change.secrets:
        # Names are stored in clear (secret_keys); values are sealed, so any text is fine there.
        unfit = unstorable(list(change.secrets))
        if unfit is not None:
            raise InvalidInput(f"a secret name {unfit[1]}")


async def submit(
    principal: Principal,
    client: Client,
    resources: Resources,
    tenant_id: str,
    extension: str,
    key: str | None,
    change: Change,
) -> tuple[InstallRequest, InstallChangeResult]:
    """Send `change` to the install entity; returns the request sent and the change's result."""
    principal.require("installs:manage")
    principal.require_tenant(tenant_id)
    _check_text(change)
    request = InstallRequest(
        request_id=request_id(key),
        operation=change.operation,
        actor=principal.actor,
        version=change.version,
        config=change.config,
        secrets=_seal(resources, change.secrets) if change.secrets else None,
        rate_limit_rps=change.rate_limit_rps,
        rate_limit_burst=change.rate_limit_burst,
        debug_enabled=change.debug_enabled,
        accept=change.accept,
        deny=change.deny,
        config_merge=change.config_merge,
        drop_schedules=change.drop_schedules,
    )
    # What the request id is bound to: the workflow refuses the id with another fingerprint (422).
    request = replace(
        request, fingerprint=fingerprint(request, secrets=change.secrets, keyring=resources.keyring)
    )
    await install_checks.check_change(
        await resources.pool(), client, tenant_id, extension, request, keyed=key is not None
    )
    result = await control.apply_install_change(client, resources.settings, tenant_id, extension, request)
    return request, result
