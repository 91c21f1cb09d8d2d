"""The registry query of the gateway's hot path: one per install-cache miss (tokens: registry.read_operator).

`registry.read.resolve_install` serves the operator API and the runner; the gateway needs more in the
same round trip (the sealed secrets, the manifest's limits, the granted egress) and less (not the whole
manifest, whose `config_schema` can be large), so it has its own query. Read-only, tenant-scoped in
SQL: the WHERE clause carries the caller's tenant, never a tenant taken from the request.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from core.crypto import SecretEnvelope
from core.db import map_db_errors
from schema.envelope import ENGINE_FINGERPRINT_PATTERN, MAX_ARTIFACTS


@dataclass(frozen=True, kw_only=True)
class GatewayInstall:
    install_id: str
    tenant_id: str
    extension: str
    version: str
    content_hash: str
    active: bool  # install active AND version verified (not revoked)
    revision: int
    endpoints: tuple[tuple[str, str], ...]  # (method, path template)
    granted_capabilities: tuple[str, ...]
    timeout_ms: int
    memory_mb: int
    egress: tuple[str, ...]
    config: dict[str, Any]
    config_version: int
    secrets: SecretEnvelope | None
    secrets_version: int
    rate_limit_rps: float | None
    rate_limit_burst: int | None
    # The bundle's precompiled artifacts as (engine fingerprint, sha256 hex, size), for the runner to
    # check an artifact against before deserializing it (schema.envelope `artifacts`).
    artifacts: tuple[tuple[str, str, int], ...] = ()


_INSTALL = """
SELECT i.id, i.tenant_id, e.name, v.version, v.content_hash,
       (i.status = 'active' AND v.status = 'verified') AS active,
       i.revision, i.granted_capabilities, i.config_version, i.secrets_version,
       i.rate_limit_rps, i.rate_limit_burst,
       v.manifest -> 'limits' AS limits, i.granted_egress AS egress,
       COALESCE((SELECT c.config FROM install_config c
                 WHERE c.install_id = i.id AND c.version = i.config_version), '{}'::jsonb) AS config,
       COALESCE((SELECT array_agg(ARRAY[a.method, a.path] ORDER BY a.path, a.method)
                 FROM api_endpoints a WHERE a.version_id = v.id), '{}') AS endpoints,
       s.version AS s_version, s.ciphertext, s.nonce, k.wrapped_key, k.master_key_version,
       b.precompiled
FROM installs i
JOIN extensions e ON e.id = i.extension_id
JOIN versions v ON v.id = i.version_id
JOIN bundles b ON b.content_hash = v.content_hash
LEFT JOIN install_secrets s ON s.install_id = i.id AND s.version = i.secrets_version
LEFT JOIN install_data_keys k ON k.install_id = i.id
WHERE i.tenant_id = $1 AND e.name = $2
"""


_FINGERPRINT = re.compile(ENGINE_FINGERPRINT_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _artifacts(precompiled: object) -> tuple[tuple[str, str, int], ...]:
    """The well-formed `{fingerprint: {key, sha256, size}}` records; a malformed one is left out, so the
    runner compiles for that engine instead of the install becoming unservable."""
    if not isinstance(precompiled, dict):
        return ()
    found = []
    for fingerprint, record in sorted(precompiled.items()):
        if not isinstance(record, dict):
            continue
        sha256, size = record.get("sha256"), record.get("size")
        if (
            _FINGERPRINT.fullmatch(str(fingerprint))
            and isinstance(sha256, str)
            and _SHA256.fullmatch(sha256)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size > 0
        ):
            found.append((str(fingerprint), sha256, size))
    return tuple(found[:MAX_ARTIFACTS])


async def gateway_install(pool: asyncpg.Pool, tenant_id: str, extension: str) -> GatewayInstall | None:
    """The install of `extension` in `tenant_id` (active or not); None when there is none."""
    async with map_db_errors():
        row = await pool.fetchrow(_INSTALL, tenant_id, extension)
    if row is None:
        return None
    install_id = str(row["id"])
    secrets = None
    if row["ciphertext"] is not None and row["wrapped_key"] is not None:
        secrets = SecretEnvelope(
            install_id=install_id,
            secrets_version=row["s_version"],
            ciphertext_b64=base64.b64encode(row["ciphertext"]).decode(),
            nonce_b64=base64.b64encode(row["nonce"]).decode(),
            wrapped_key_b64=base64.b64encode(row["wrapped_key"]).decode(),
            master_key_version=row["master_key_version"],
        )
    limits = row["limits"] if isinstance(row["limits"], dict) else {}
    egress = list(row["egress"])  # the install's grant (schema.install_rules), not the whole manifest
    return GatewayInstall(
        install_id=install_id,
        tenant_id=row["tenant_id"],
        extension=row["name"],
        version=row["version"],
        content_hash=row["content_hash"],
        active=row["active"],
        revision=row["revision"],
        endpoints=tuple((m, p) for m, p in row["endpoints"]),
        granted_capabilities=tuple(row["granted_capabilities"]),
        timeout_ms=int(limits.get("timeout_ms", 5000)),
        memory_mb=int(limits.get("memory_mb", 64)),
        egress=tuple(str(h) for h in egress),
        config=row["config"] if isinstance(row["config"], dict) else {},
        config_version=row["config_version"],
        secrets=secrets,
        secrets_version=row["secrets_version"],
        rate_limit_rps=row["rate_limit_rps"],
        rate_limit_burst=row["rate_limit_burst"],
        artifacts=_artifacts(row["precompiled"]),
    )
