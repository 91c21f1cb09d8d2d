"""registry.write and registry.read against a real database: idempotence, rollback choice, cascades."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from core.errors import Conflict, InvalidInput
from registry import read, write
from schema.errors import ErrorCode
from schema.payloads.install import ApplyInstallChangeInput
from schema.payloads.install import InstallOperation as Op
from tests.workflows.helpers import Signer, fixed_keyring, manifest

pytestmark = pytest.mark.integration


def fake_hash(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


async def register(pool: asyncpg.Pool, signer: Signer, doc: dict[str, Any], seed: str = "") -> str:
    digest = fake_hash(seed or f"{doc['name']}@{doc['version']}")
    await write.register_version(
        pool,
        content_hash=digest,
        storage_key=f"bundles/{digest[7:]}.tar.zst",
        size=10,
        signature="c2ln",
        signer_key_id=signer.key_id,
        verified_at=datetime.now(UTC),
        manifest=doc,
        workflow_id=f"publish/{digest}",
    )
    return digest


@pytest.fixture
async def signer(db_pool: asyncpg.Pool) -> Signer:
    s = Signer("acme")
    await s.trust(db_pool)
    return s


def change(op: Op, wf: str | None = None, **kw: Any) -> ApplyInstallChangeInput:
    return ApplyInstallChangeInput(
        tenant_id="t1",
        extension="com.acme.x",
        request_id=uuid.uuid4().hex,
        operation=op,
        workflow_id=wf or f"wf-{uuid.uuid4().hex}",
        **kw,
    )


async def test_register_version_is_idempotent_and_immutable(db_pool: asyncpg.Pool, signer: Signer) -> None:
    doc = manifest("com.acme.x")
    await register(db_pool, signer, doc)
    await register(db_pool, signer, doc)  # same hash again: a no-op
    with pytest.raises(Conflict) as info:
        await register(db_pool, signer, doc, seed="other bytes")
    assert info.value.code is ErrorCode.VERSION_EXISTS
    assert await db_pool.fetchval("SELECT count(*) FROM versions") == 1
    assert await db_pool.fetchval("SELECT count(*) FROM bundles") == 1  # the clash rolled back its bundle row
    with pytest.raises(Conflict):
        await register(db_pool, signer, manifest("com.acme.x", "2.0.0", publisher="globex"))


async def test_retried_change_is_applied_once(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, manifest("com.acme.x", "1.0.0"))
    await register(db_pool, signer, manifest("com.acme.x", "2.0.0"))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))
    up = change(Op.UPGRADE, wf="wf-upgrade", version="2.0.0")

    first = await write.apply_install_change(db_pool, up)
    retry = await write.apply_install_change(db_pool, up)

    assert (first.change.revision, retry.change.revision) == (2, 2)
    assert retry.change.previous_version == "1.0.0" and retry.change.version == "2.0.0"
    assert await db_pool.fetchval("SELECT count(*) FROM install_history") == 2


async def test_rollback_goes_to_the_previous_version_and_refuses_revoked(
    db_pool: asyncpg.Pool, signer: Signer
) -> None:
    for v in ("1.0.0", "2.0.0", "3.0.0", "4.0.0"):
        await register(db_pool, signer, manifest("com.acme.x", v))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))
    await write.apply_install_change(db_pool, change(Op.UPGRADE, version="3.0.0"))
    await write.apply_install_change(db_pool, change(Op.UPGRADE, version="2.0.0"))

    back = await write.apply_install_change(db_pool, change(Op.ROLLBACK))
    assert (back.change.version, back.change.previous_version) == ("3.0.0", "2.0.0")

    # Again: further back in history (1.0.0), not forth to the version just rolled back from.
    await db_pool.execute("UPDATE versions SET status = 'revoked' WHERE version = '1.0.0'")
    with pytest.raises(InvalidInput) as info:
        await write.apply_install_change(db_pool, change(Op.ROLLBACK))
    assert info.value.code is ErrorCode.VERSION_NOT_INSTALLABLE
    with pytest.raises(Conflict):
        await write.apply_install_change(db_pool, change(Op.INSTALL, version="2.0.0"))  # installed at 3.0.0


async def test_rollback_to_goes_only_to_a_version_the_install_ran(
    db_pool: asyncpg.Pool, signer: Signer
) -> None:
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        await register(db_pool, signer, manifest("com.acme.x", v))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="2.0.0"))
    await write.apply_install_change(db_pool, change(Op.UPGRADE, version="3.0.0"))
    for never in ("1.0.0", "9.9.9"):  # published but never run here; not published at all
        with pytest.raises(Conflict) as info:
            await write.apply_install_change(db_pool, change(Op.ROLLBACK, version=never))
        assert info.value.code is ErrorCode.VERSION_NOT_IN_HISTORY
        assert info.value.details == {"version": never}
    assert await db_pool.fetchval("SELECT revision FROM installs") == 2  # nothing written
    back = await write.apply_install_change(db_pool, change(Op.ROLLBACK, version="2.0.0"))
    assert back.change.version == "2.0.0"


async def test_uninstall_removes_config_secrets_and_storage(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, manifest("com.acme.x"))
    done = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", config={"a": 1}))
    install_id = done.change.install_id
    await write.store_secrets(
        db_pool,
        fixed_keyring(1),
        tenant_id="t1",
        extension="com.acme.x",
        secrets={"K": "v"},
        workflow_id="wf-s",
    )
    await db_pool.execute(
        """INSERT INTO storage_records (install_id, namespace, key, value, size_bytes)
           VALUES ($1, 'ns', 'k', 'v', 1)""",
        uuid.UUID(install_id),
    )
    resolved = await read.resolve_install(db_pool, "t1", "com.acme.x")
    assert resolved is not None and resolved.config == {"a": 1} and resolved.secrets_version == 1
    assert await read.secret_envelope(db_pool, install_id) is not None

    gone = await write.apply_install_change(db_pool, change(Op.UNINSTALL))
    again = await write.apply_install_change(db_pool, change(Op.UNINSTALL))

    assert (gone.change.changed, gone.change.install_id, gone.change.revision) == (True, install_id, 3)
    assert again.change.changed is False
    for table in ("installs", "install_config", "install_secrets", "install_data_keys", "storage_records"):
        assert await db_pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert await read.resolve_install(db_pool, "t1", "com.acme.x") is None
