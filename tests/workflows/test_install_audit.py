"""What an install change leaves for an auditor: search attributes in Temporal (describe and visibility)
and the before/after of its audit row (config values, secret names only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from bundles.blobstore import FilesystemBlobStore
from core.codec import seal_secrets
from core.crypto import Keyring
from schema.payloads.install import InstallChangeResult
from schema.payloads.install import InstallOperation as Op
from schema.temporal import install_workflow_id
from tests.workflows.helpers import Installs, Signer, eventually, manifest, publish_version, unique_name
from workflows._common import CONTENT_HASH, EXTENSION_VERSION, OPERATION, TENANT_ID

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

SECRET_VALUE = "s3cr3t-value-never-in-audit"


async def attributes(client: Client, workflow_id: str) -> dict[str, str | None]:
    desc = await client.get_workflow_handle(workflow_id).describe()
    attrs = desc.typed_search_attributes
    return {
        "tenant": attrs.get(TENANT_ID),
        "version": attrs.get(EXTENSION_VERSION),
        "hash": attrs.get(CONTENT_HASH),
        "operation": attrs.get(OPERATION),
    }


async def audit_row(pool: asyncpg.Pool, result: InstallChangeResult) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM audit_events WHERE workflow_id = $1 AND step = 'change'", result.workflow_id
    )
    assert row is not None, result.operation
    return row


async def test_every_change_carries_the_content_hash_it_leaves_the_install_at(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    keyring: Keyring,
) -> None:
    name = unique_name()
    schema = {
        "type": "object",
        "properties": {"greeting": {"type": "string"}, "retries": {"type": "integer"}},
    }
    v1 = await publish_version(
        client, task_queue, store, signer, tmp_path, manifest(name, "1.0.0", config_schema=schema)
    )
    v2 = await publish_version(
        client, task_queue, store, signer, tmp_path, manifest(name, "1.1.0", config_schema=schema)
    )
    assert v1.content_hash != v2.content_hash
    sealed = seal_secrets(keyring, {"api_key": SECRET_VALUE})
    steps: list[tuple[Op, dict[str, Any], str, str]] = [
        (
            Op.INSTALL,
            {"version": "1.0.0", "config": {"greeting": "hi"}, "secrets": sealed},
            "1.0.0",
            v1.content_hash,
        ),
        (Op.UPGRADE, {"version": "1.1.0"}, "1.1.0", v2.content_hash),
        (Op.ROLLBACK, {}, "1.0.0", v1.content_hash),
        (Op.SET_CONFIG, {"config": {"greeting": "hello", "retries": 3}}, "1.0.0", v1.content_hash),
        (
            Op.SET_SECRETS,
            {"secrets": seal_secrets(keyring, {"api_key": "x", "other": "y"})},
            "1.0.0",
            v1.content_hash,
        ),
        (Op.SET_LIMITS, {"rate_limit_rps": 5.0, "rate_limit_burst": 10}, "1.0.0", v1.content_hash),
        (Op.SET_DEBUG, {"debug_enabled": True}, "1.0.0", v1.content_hash),
        (Op.DISABLE, {}, "1.0.0", v1.content_hash),
        (Op.ENABLE, {}, "1.0.0", v1.content_hash),
        (Op.UPGRADE, {"version": "1.1.0"}, "1.1.0", v2.content_hash),
        (Op.UNINSTALL, {}, "1.1.0", v2.content_hash),  # the version it was at before
    ]
    results: dict[Op, InstallChangeResult] = {}
    for op, fields, version, content_hash in steps:
        result = await installs.apply(name, op, **fields)
        assert result.changed, op
        results[op] = result
        assert await attributes(client, result.workflow_id) == {
            "tenant": installs.tenant,
            "version": version,
            "hash": content_hash,
            "operation": op.value,
        }, op
        row = await audit_row(db_pool, result)
        assert (row["version"], row["content_hash"]) == (version, content_hash), op
        assert SECRET_VALUE not in json.dumps([row["before"], row["after"]]), op
        if op is not Op.UNINSTALL:
            entity = await attributes(client, install_workflow_id(installs.tenant, name))
            assert (entity["version"], entity["hash"]) == (version, content_hash), op

    # Visibility (what Temporal UI's filter runs): every change that left the install at v1's bundle.
    query = (
        f'TenantId = "{installs.tenant}" AND ContentHash = "{v1.content_hash}" '
        'AND WorkflowType = "InstallChange"'
    )

    async def listed() -> list[str] | None:
        ops = sorted(
            [str(w.search_attributes.get("Operation", [""])[0]) async for w in client.list_workflows(query)]
        )
        return ops if len(ops) == 8 else None

    assert await eventually(listed, what="visibility") == sorted(
        ["install", "rollback", "set_config", "set_secrets", "set_limits", "set_debug", "disable", "enable"]
    )


async def test_audit_rows_hold_config_values_and_secret_names_only(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    keyring: Keyring,
) -> None:
    name = unique_name()
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.0.0"))
    await publish_version(client, task_queue, store, signer, tmp_path, manifest(name, "1.1.0"))
    sealed = seal_secrets(keyring, {"api_key": SECRET_VALUE})

    install = await audit_row(
        db_pool,
        await installs.apply(name, Op.INSTALL, version="1.0.0", config={"greeting": "hi"}, secrets=sealed),
    )
    assert install["before"] is None
    assert install["after"]["config"] == {"greeting": "hi"}
    assert install["after"]["secret_names"] == ["api_key"]

    set_config = await audit_row(
        db_pool, await installs.apply(name, Op.SET_CONFIG, config={"greeting": "yo"})
    )
    assert (set_config["before"]["config"], set_config["after"]["config"]) == (
        {"greeting": "hi"},
        {"greeting": "yo"},
    )
    assert (set_config["before"]["config_version"], set_config["after"]["config_version"]) == (1, 2)

    upgrade = await audit_row(db_pool, await installs.apply(name, Op.UPGRADE, version="1.1.0"))
    assert upgrade["before"]["config"] == upgrade["after"]["config"] == {"greeting": "yo"}
    assert upgrade["after"]["secret_names"] == ["api_key"]
    assert (upgrade["before"]["version"], upgrade["after"]["version"]) == ("1.0.0", "1.1.0")

    rollback = await audit_row(db_pool, await installs.apply(name, Op.ROLLBACK))
    assert rollback["after"]["config"] == {"greeting": "yo"}
    assert (rollback["before"]["version"], rollback["after"]["version"]) == ("1.1.0", "1.0.0")

    rotated = await audit_row(
        db_pool,
        await installs.apply(name, Op.SET_SECRETS, secrets=seal_secrets(keyring, {"b": "2", "a": "1"})),
    )
    assert rotated["before"] == {"secret_names": ["api_key"]}
    assert rotated["after"] == {"secret_names": ["a", "b"]}

    rows = await db_pool.fetch(
        "SELECT before, after FROM audit_events WHERE tenant_id = $1 AND extension_name = $2",
        installs.tenant,
        name,
    )
    text = json.dumps([[r["before"], r["after"]] for r in rows])
    assert SECRET_VALUE not in text
    assert sealed.ciphertext_b64 not in text
