"""Install consent and declarative re-install in registry.write against a real database: what is
denied is not in the install's grant nor in what the gateway sends the runner; a version change that
adds anything is refused (nothing written) until exactly that is accepted; config merge/replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core.errors import Conflict, InvalidInput
from registry import read, read_gateway, write
from registry.envelope import prepare
from schema.envelope import ExecuteRequest
from schema.errors import ErrorCode
from schema.install_rules import GrantSet
from schema.payloads.install import InstallOperation as Op
from tests.registry.test_registry import change, register
from tests.workflows.helpers import Signer, manifest

pytestmark = pytest.mark.integration

DEFAULTS = ["cap:context.read", "cap:log.emit", "cap:user.read"]
HTTP, KV = "cap:http.fetch", "cap:storage.kv"
MIGRATION = Path(__file__).resolve().parents[2] / "schema" / "migrations" / "0007_install_grants.sql"


def doc(version: str, *caps: str, egress: tuple[str, ...] = ()) -> dict[str, Any]:
    return manifest("com.acme.x", version, capabilities=list(caps), egress=list(egress))


@pytest.fixture
async def signer(db_pool: asyncpg.Pool) -> Signer:
    s = Signer("acme")
    await s.trust(db_pool)
    return s


async def state(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(
        """SELECT v.version, i.revision, i.granted_capabilities, i.granted_egress, i.config_version
           FROM installs i JOIN versions v ON v.id = i.version_id"""
    )
    assert row is not None
    return row


async def test_denied_capability_and_host_are_not_granted_nor_sent_to_the_runner(
    db_pool: asyncpg.Pool, signer: Signer
) -> None:
    await register(db_pool, signer, doc("1.0.0", KV, HTTP, egress=("a.example", "b.example")))
    done = await write.apply_install_change(
        db_pool, change(Op.INSTALL, version="1.0.0", deny=GrantSet.of([KV], ["b.example"]))
    )
    assert done.change.requested == GrantSet.of([*DEFAULTS, HTTP, KV], ["a.example", "b.example"])
    assert done.change.granted == GrantSet.of([*DEFAULTS, HTTP], ["a.example"])
    assert done.after is not None and done.after["consent"]["denied"] == {
        "capabilities": [KV],
        "egress": ["b.example"],
    }
    hot = await read_gateway.gateway_install(db_pool, "t1", "com.acme.x")
    assert hot is not None
    assert KV not in hot.granted_capabilities and HTTP in hot.granted_capabilities
    assert hot.egress == ("a.example",)  # the grant, not the manifest
    # What the runner receives: it links host interfaces only for these and fetches only these hosts.
    raw = prepare(hot, default_rps=1, default_burst=1).envelope(
        request_id="r", method="GET", path="/status", query="", headers=[], body_b64=b"", user={"id": "u1"}
    )
    sent = ExecuteRequest.model_validate_json(raw)
    assert sent.egress == ["a.example"] and KV not in sent.capabilities.granted
    operator = await read.resolve_install(db_pool, "t1", "com.acme.x")
    assert operator is not None and operator.granted_egress == ["a.example"]


async def test_a_bad_deny_writes_nothing(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, doc("1.0.0", KV))
    for deny in (GrantSet.of(["cap:log.emit"], []), GrantSet.of([HTTP], []), GrantSet.of([], ["x.example"])):
        with pytest.raises(InvalidInput) as info:
            await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", deny=deny))
        assert info.value.code is ErrorCode.INVALID_REQUEST
    assert await db_pool.fetchval("SELECT count(*) FROM installs") == 0


async def test_upgrade_that_adds_needs_exactly_that_consent(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, doc("1.0.0", KV))
    await register(db_pool, signer, doc("2.0.0", KV, HTTP, egress=("api.example",)))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))

    with pytest.raises(Conflict) as info:
        await write.apply_install_change(db_pool, change(Op.UPGRADE, version="2.0.0"))
    assert info.value.code is ErrorCode.CONSENT_REQUIRED
    assert info.value.details["added"] == {"capabilities": [HTTP], "egress": ["api.example"]}
    assert info.value.details["missing"] == info.value.details["added"]
    with pytest.raises(Conflict) as info:  # fewer than the diff: still consent_required
        await write.apply_install_change(
            db_pool, change(Op.UPGRADE, version="2.0.0", accept=GrantSet.of([HTTP], []))
        )
    assert info.value.details["missing"] == {"capabilities": [], "egress": ["api.example"]}
    with pytest.raises(InvalidInput):  # more than the diff: refused, no blanket consent
        await write.apply_install_change(
            db_pool,
            change(Op.UPGRADE, version="2.0.0", accept=GrantSet.of([HTTP, KV], ["api.example"])),
        )
    before = await state(db_pool)
    assert (before["version"], before["revision"]) == ("1.0.0", 1)  # nothing written

    up = await write.apply_install_change(
        db_pool, change(Op.UPGRADE, version="2.0.0", accept=GrantSet.of([HTTP], ["api.example"]))
    )
    assert up.change.granted == GrantSet.of([*DEFAULTS, HTTP, KV], ["api.example"])
    assert up.after is not None
    assert up.after["consent"]["accepted"] == {"capabilities": [HTTP], "egress": ["api.example"]}
    assert up.after["consent"]["requested"]["egress"] == ["api.example"]
    assert up.after["granted_egress"] == ["api.example"]


async def test_a_denial_stands_across_an_upgrade_and_a_rollback_needs_no_consent_to_shrink(
    db_pool: asyncpg.Pool, signer: Signer
) -> None:
    await register(db_pool, signer, doc("1.0.0", KV, HTTP, egress=("api.example",)))
    await register(db_pool, signer, doc("2.0.0", KV, HTTP, egress=("api.example", "new.example")))
    await write.apply_install_change(
        db_pool, change(Op.INSTALL, version="1.0.0", deny=GrantSet.of([HTTP], ["api.example"]))
    )
    up = await write.apply_install_change(
        db_pool, change(Op.UPGRADE, version="2.0.0", deny=GrantSet.of([], ["new.example"]))
    )
    assert up.change.granted == GrantSet.of([*DEFAULTS, KV], [])
    back = await write.apply_install_change(db_pool, change(Op.ROLLBACK))
    assert (back.change.version, back.change.granted) == ("1.0.0", GrantSet.of([*DEFAULTS, KV], []))


async def test_reinstall_at_the_version_is_declarative(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, doc("1.0.0", KV, HTTP, egress=("api.example",)))
    first = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", config={"a": 1}))
    assert first.change.config_version == 1

    same = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", config={"a": 1}))
    omitted = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))
    assert (same.change.changed, omitted.change.changed) == (False, False)

    new = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", config={"b": 2}))
    assert (new.change.changed, new.change.config_version, new.change.revision) == (True, 2, 2)
    resolved = await read.resolve_install(db_pool, "t1", "com.acme.x")
    assert resolved is not None and resolved.config == {"b": 2}  # replaced, not merged

    narrowed = await write.apply_install_change(
        db_pool, change(Op.INSTALL, version="1.0.0", deny=GrantSet.of([HTTP], ["api.example"]))
    )
    assert narrowed.change.granted == GrantSet.of([*DEFAULTS, KV], [])
    kept = await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))
    assert kept.change.changed is False and kept.change.granted == narrowed.change.granted
    regranted = await write.apply_install_change(
        db_pool, change(Op.INSTALL, version="1.0.0", deny=GrantSet())
    )
    assert regranted.change.granted == GrantSet.of([*DEFAULTS, HTTP, KV], ["api.example"])
    history = await read.install_history(db_pool, first.change.install_id)
    assert [h.operation for h in history] == ["install"] * 4


async def test_config_set_merges_unless_replaced(db_pool: asyncpg.Pool, signer: Signer) -> None:
    await register(db_pool, signer, doc("1.0.0"))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0", config={"a": 1, "b": 1}))
    await write.apply_install_change(
        db_pool, change(Op.SET_CONFIG, config={"b": 2, "c": 3}, config_merge=True)
    )
    resolved = await read.resolve_install(db_pool, "t1", "com.acme.x")
    assert resolved is not None and resolved.config == {"a": 1, "b": 2, "c": 3}
    await write.apply_install_change(db_pool, change(Op.SET_CONFIG, config={"z": 0}))
    resolved = await read.resolve_install(db_pool, "t1", "com.acme.x")
    assert resolved is not None and resolved.config == {"z": 0}


async def test_migration_backfills_the_manifest_egress_of_existing_installs(
    db_pool: asyncpg.Pool, signer: Signer
) -> None:
    await register(db_pool, signer, doc("1.0.0", HTTP, egress=("b.example", "a.example")))
    await write.apply_install_change(db_pool, change(Op.INSTALL, version="1.0.0"))
    await db_pool.execute("UPDATE installs SET granted_egress = '{}'")  # as before the migration
    backfill = MIGRATION.read_text().split("UPDATE installs", 1)[1]
    await db_pool.execute("UPDATE installs" + backfill)
    assert list((await state(db_pool))["granted_egress"]) == ["a.example", "b.example"]
