"""Install secrets (envelope encryption, core.crypto) and master-key rotation of the data keys."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from core.crypto import Keyring, encrypt_secrets, new_data_key, unwrap_data_key, wrap_data_key
from core.db import map_db_errors
from core.errors import NotFound
from registry.write._install_state import append_history, extension_id, lock_install, recorded_change


@dataclass(frozen=True, kw_only=True)
class StoredSecrets:
    install_id: str
    secrets_version: int
    revision: int
    key_names: list[str]
    changed: bool
    version: str
    status: str
    content_hash: str = ""
    # Key names of the secrets version this change replaced (none before the first).
    previous_key_names: list[str] | None = None


async def store_secrets(
    pool: asyncpg.Pool,
    keyring: Keyring,
    *,
    tenant_id: str,
    extension: str,
    secrets: dict[str, str],
    workflow_id: str,
    operation: str = "set_secrets",
) -> StoredSecrets:
    """Encrypt `secrets` with the install's data key (created on first use) as a new secrets version.

    Idempotent per workflow: a retry returns the version this workflow wrote. Raises NotFound.
    """
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        ext_id = await extension_id(conn, extension)
        row = await lock_install(conn, tenant_id, ext_id) if ext_id is not None else None
        if row is None:
            raise NotFound(
                f"{extension} is not installed in tenant {tenant_id}",
                details={"tenant_id": tenant_id, "name": extension},
            )
        install_id = row["id"]
        if await recorded_change(conn, install_id, workflow_id, operation) is not None:
            written = await conn.fetchrow(
                "SELECT version, key_names FROM install_secrets WHERE install_id = $1 AND workflow_id = $2",
                install_id,
                workflow_id,
            )
            replaced = None
            if written is not None:
                replaced = await conn.fetchval(
                    "SELECT key_names FROM install_secrets WHERE install_id = $1 AND version = $2",
                    install_id,
                    written["version"] - 1,
                )
            return StoredSecrets(
                install_id=str(install_id),
                secrets_version=row["secrets_version"],
                revision=row["revision"],
                key_names=list(written["key_names"] or []) if written is not None else [],
                changed=False,
                version=row["version"],
                status=row["status"],
                content_hash=row["content_hash"],
                previous_key_names=sorted(replaced) if replaced is not None else None,
            )
        keyrow = await conn.fetchrow(
            "SELECT wrapped_key, master_key_version FROM install_data_keys WHERE install_id = $1", install_id
        )
        if keyrow is None:
            data_key = new_data_key()
            wrapped, master_version = wrap_data_key(keyring, data_key, install_id=str(install_id))
            await conn.execute(
                """INSERT INTO install_data_keys (install_id, wrapped_key, master_key_version)
                   VALUES ($1, $2, $3)""",
                install_id,
                wrapped,
                master_version,
            )
        else:
            master_version = keyrow["master_key_version"]
            data_key = unwrap_data_key(
                keyring, keyrow["wrapped_key"], install_id=str(install_id), master_version=master_version
            )
        version = row["secrets_version"] + 1
        ciphertext, nonce = encrypt_secrets(
            data_key, secrets, install_id=str(install_id), secrets_version=version
        )
        await conn.execute(
            """INSERT INTO install_secrets (install_id, version, ciphertext, nonce, key_names,
                                            master_key_version, workflow_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            install_id,
            version,
            ciphertext,
            nonce,
            sorted(secrets),
            master_version,
            workflow_id,
        )
        revision = row["revision"] + 1
        await conn.execute(
            "UPDATE installs SET secrets_version = $2, revision = $3, updated_at = now() WHERE id = $1",
            install_id,
            version,
            revision,
        )
        await append_history(
            conn,
            install_id=install_id,
            revision=revision,
            operation=operation,
            from_version_id=row["version_id"],
            to_version_id=row["version_id"],
            workflow_id=workflow_id,
        )
    return StoredSecrets(
        install_id=str(install_id),
        secrets_version=version,
        revision=revision,
        key_names=sorted(secrets),
        changed=True,
        version=row["version"],
        status=row["status"],
        content_hash=row["content_hash"],
        previous_key_names=sorted(row["secret_names"]) if row["secret_names"] is not None else None,
    )


async def rewrap_data_keys(pool: asyncpg.Pool, keyring: Keyring, *, batch_size: int) -> int:
    """Re-wrap up to `batch_size` data keys not yet under the newest master key; returns how many.

    Idempotent: rows already under the newest version are skipped; SKIP LOCKED lets two runs share work.
    """
    target = keyring.current_version
    async with map_db_errors(), pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT install_id, wrapped_key, master_key_version FROM install_data_keys
               WHERE master_key_version <> $1 ORDER BY install_id LIMIT $2 FOR UPDATE SKIP LOCKED""",
            target,
            batch_size,
        )
        for r in rows:
            install_id = str(r["install_id"])
            data_key = unwrap_data_key(
                keyring, r["wrapped_key"], install_id=install_id, master_version=r["master_key_version"]
            )
            wrapped, version = wrap_data_key(keyring, data_key, install_id=install_id, version=target)
            await conn.execute(
                """UPDATE install_data_keys SET wrapped_key = $2, master_key_version = $3, rotated_at = now()
                   WHERE install_id = $1""",
                r["install_id"],
                wrapped,
                version,
            )
    return len(rows)
