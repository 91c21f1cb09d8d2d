"""The install entity workflow and its per-change child workflows, end to end."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bundles.blobstore import FilesystemBlobStore
from registry import read, read_debug
from schema.install_rules import GrantSet
from schema.payloads.install import InstallOperation as Op
from schema.payloads.install import InstallState
from schema.temporal import INSTALL_STATE_QUERY, install_workflow_id
from tests.workflows.helpers import (
    Installs,
    Invalidations,
    Signer,
    eventually,
    manifest,
    publish_version,
    unique_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.temporal]

# What every second version of publish_versions adds: the consent an upgrade to it needs.
GROWTH = GrantSet.of(["cap:http.fetch"], ["api.example.com"])
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {"greeting": {"type": "string"}},
    "additionalProperties": False,
}


async def publish_versions(
    client: Client,
    task_queue: str,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp: Path,
    *versions: str,
    same_grants: bool = False,
) -> str:
    """Versions of one extension; every second one asks for cap:http.fetch and an egress host (so
    moving to it needs consent) unless `same_grants`."""
    name = unique_name()
    for i, v in enumerate(versions):
        grows = bool(i % 2) and not same_grants
        caps = ["cap:log.emit", "cap:http.fetch"] if grows else ["cap:log.emit"]
        extra: dict[str, Any] = {"egress": ["api.example.com"]} if grows else {}
        doc = manifest(name, v, capabilities=caps, config_schema=CONFIG_SCHEMA, **extra)
        await publish_version(client, task_queue, store, signer, tmp, doc)
    return name


async def history(pool: asyncpg.Pool, tenant: str, name: str) -> list[tuple[str, str | None, str | None]]:
    rows = await pool.fetch(
        """SELECT h.operation, fv.version AS f, tv.version AS t FROM install_history h
           JOIN installs i ON i.id = h.install_id JOIN extensions e ON e.id = i.extension_id
           LEFT JOIN versions fv ON fv.id = h.from_version_id LEFT JOIN versions tv ON tv.id = h.to_version_id
           WHERE i.tenant_id = $1 AND e.name = $2 ORDER BY h.revision""",
        tenant,
        name,
    )
    return [(r["operation"], r["f"], r["t"]) for r in rows]


async def accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    kind = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return sum(1 for e in history.events if e.event_type == kind)


async def test_lifecycle_bumps_revision_records_history_and_invalidates(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    redis_client: aioredis.Redis,
) -> None:
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0", "1.1.0")
    t = installs.tenant
    async with Invalidations(redis_client) as inv:
        r = await installs.apply(name, Op.INSTALL, version="1.0.0", config={"greeting": "hi"})
        assert (r.revision, r.version, r.status, r.config_version, r.changed) == (
            1,
            "1.0.0",
            "active",
            1,
            True,
        )
        got = await read.resolve_install(db_pool, t, name)
        assert got is not None and got.active
        assert got.granted_capabilities == ["cap:context.read", "cap:log.emit", "cap:user.read"]
        assert got.config == {"greeting": "hi"}
        assert got.endpoints == [("POST", "/items/:id"), ("GET", "/status")]

        r = await installs.apply(name, Op.UPGRADE, version="1.1.0", accept=GROWTH)
        assert (r.revision, r.version, r.previous_version) == (2, "1.1.0", "1.0.0")
        assert r.granted is not None and r.granted.egress == ["api.example.com"]
        got = await read.resolve_install(db_pool, t, name)
        assert got is not None and "cap:http.fetch" in got.granted_capabilities

        r = await installs.apply(name, Op.ROLLBACK)
        assert (r.revision, r.version, r.previous_version) == (3, "1.0.0", "1.1.0")
        r = await installs.apply(name, Op.DISABLE)
        assert (r.revision, r.status) == (4, "disabled")
        assert await read.resolve_active_install(db_pool, t, name) is None
        r = await installs.apply(name, Op.ENABLE)
        assert (r.revision, r.status) == (5, "active")
        r = await installs.apply(name, Op.SET_LIMITS, rate_limit_rps=5.0, rate_limit_burst=10)
        assert r.revision == 6
        r = await installs.apply(name, Op.SET_DEBUG, debug_enabled=True)
        assert (r.revision, r.changed) == (7, True)
        r = await installs.apply(name, Op.SET_DEBUG, debug_enabled=True)
        assert (r.revision, r.changed) == (7, False)  # already on: no revision, no history row
        r = await installs.apply(name, Op.SET_CONFIG, config={"greeting": "yo"})
        assert (r.revision, r.config_version) == (8, 2)
        err = await installs.failure(name, Op.SET_CONFIG, config={"greeting": 5})
        assert err.type == "invalid_config"
        got = await read.resolve_install(db_pool, t, name)
        assert got is not None
        assert (got.rate_limit_rps, got.rate_limit_burst, got.debug_enabled, got.config, got.revision) == (
            5.0,
            10,
            True,
            {"greeting": "yo"},
            8,
        )
        assert await history(db_pool, t, name) == [
            ("install", None, "1.0.0"),
            ("upgrade", "1.0.0", "1.1.0"),
            ("rollback", "1.1.0", "1.0.0"),
            ("disable", "1.0.0", "1.0.0"),
            ("enable", "1.0.0", "1.0.0"),
            ("set_limits", "1.0.0", "1.0.0"),
            ("set_debug", "1.0.0", "1.0.0"),
            ("set_config", "1.0.0", "1.0.0"),
        ]

        r = await installs.apply(name, Op.UNINSTALL)
        assert (r.revision, r.status, r.changed) == (9, "uninstalled", True)
        assert await read.resolve_install(db_pool, t, name) is None
        assert await db_pool.fetchval("SELECT count(*) FROM install_config") == 0

        messages = await inv.wait(t, 9)
    assert [m["revision"] for m in messages] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert {m["extension"] for m in messages} == {name}
    assert len({m["install_id"] for m in messages}) == 1
    actions = await db_pool.fetch("SELECT action FROM audit_events WHERE tenant_id = $1 ORDER BY id", t)
    assert [a["action"] for a in actions] == [
        "install",
        "upgrade",
        "rollback",
        "disable",
        "enable",
        "set_limits",
        "set_debug",
        "set_debug_noop",
        "set_config",
        "set_config_rejected",
        "uninstall",
    ]

    async def listed() -> list[str] | None:
        query = f'TenantId = "{t}" AND Operation = "upgrade"'
        ids = [wf.id async for wf in client.list_workflows(query)]
        return ids or None

    ids = await eventually(listed, what="upgrade change listed by search attributes")
    assert len(ids) == 1 and ids[0].startswith(f"install/{t}/{name}/change/")


async def test_set_debug_flips_the_operator_flag_audited_and_invalidated(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
    redis_client: aioredis.Redis,
) -> None:
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0")
    t = installs.tenant
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    gate = await read_debug.debug_install(db_pool, t, name)
    assert gate is not None and (gate.debug_enabled, gate.debuggable) == (False, False)

    async with Invalidations(redis_client) as inv:
        on = await installs.apply(name, Op.SET_DEBUG, debug_enabled=True, actor="ops")
        assert (on.operation, on.revision, on.changed, on.status) == (Op.SET_DEBUG, 2, True, "active")
        gate = await read_debug.debug_install(db_pool, t, name)
        assert gate is not None and (gate.debug_enabled, gate.debuggable) == (True, True)
        again = await installs.apply(name, Op.SET_DEBUG, debug_enabled=True, actor="ops")
        assert (again.revision, again.changed) == (2, False)
        off = await installs.apply(name, Op.SET_DEBUG, debug_enabled=False, actor="ops")
        assert (off.revision, off.changed) == (3, True)
        # The first two messages after the install: the no-op between them published nothing.
        messages = await inv.wait(t, 2)
    assert [m["revision"] for m in messages] == [2, 3]
    gate = await read_debug.debug_install(db_pool, t, name)
    assert gate is not None and (gate.debug_enabled, gate.debuggable) == (False, False)
    assert await history(db_pool, t, name) == [
        ("install", None, "1.0.0"),
        ("set_debug", "1.0.0", "1.0.0"),
        ("set_debug", "1.0.0", "1.0.0"),
    ]
    rows = await db_pool.fetch(
        """SELECT action, actor, before, after, workflow_id FROM audit_events
           WHERE tenant_id = $1 AND action LIKE 'set_debug%' ORDER BY id""",
        t,
    )
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("set_debug", "ops"),
        ("set_debug_noop", "ops"),
        ("set_debug", "ops"),
    ]
    assert (rows[0]["before"]["debug_enabled"], rows[0]["after"]["debug_enabled"]) == (False, True)
    assert rows[1]["before"] is None and rows[1]["after"]["debug_enabled"] is True
    assert (rows[2]["before"]["debug_enabled"], rows[2]["after"]["debug_enabled"]) == (True, False)
    assert [r["workflow_id"] for r in rows] == [on.workflow_id, again.workflow_id, off.workflow_id]

    # Malformed requests are refused by the entity's validator, before anything enters history.
    handle = client.get_workflow_handle(install_workflow_id(t, name))
    accepted = await accepted_updates(handle)
    missing = await installs.failure(name, Op.SET_DEBUG)
    assert (missing.type, missing.message) == (
        "invalid_request",
        "set_debug needs debug_enabled (true or false)",
    )
    stray = await installs.failure(name, Op.SET_LIMITS, rate_limit_rps=1.0, debug_enabled=True)
    assert (stray.type, stray.message) == ("invalid_request", "set_limits does not take debug_enabled")
    stray = await installs.failure(name, Op.ENABLE, debug_enabled=False)
    assert (stray.type, stray.message) == ("invalid_request", "enable does not take debug_enabled")
    limits = await installs.failure(name, Op.SET_DEBUG, debug_enabled=True, rate_limit_rps=1.0)
    assert (limits.type, limits.message) == ("invalid_request", "set_debug does not take rate limits")
    assert await accepted_updates(handle) == accepted
    # Not installed: the change is accepted, then refused by the registry.
    assert (await installs.failure(unique_name(), Op.SET_DEBUG, debug_enabled=True)).type == "not_found"
    got = await read.resolve_install(db_pool, t, name)
    assert got is not None and (got.revision, got.debug_enabled) == (3, False)


async def test_same_request_twice_is_one_change(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0")
    first = await installs.apply(name, Op.INSTALL, version="1.0.0", request_id="req-1")
    again = await installs.apply(name, Op.INSTALL, version="1.0.0", request_id="req-1")
    other = await installs.apply(name, Op.INSTALL, version="1.0.0")

    assert again == first
    assert (other.changed, other.revision) == (False, 1)
    assert await history(db_pool, installs.tenant, name) == [("install", None, "1.0.0")]
    assert await db_pool.fetchval("SELECT count(*) FROM installs WHERE tenant_id = $1", installs.tenant) == 1


async def test_an_upgrade_that_adds_is_refused_by_the_workflow_and_writes_nothing(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    """Without the API's pre-check (a client of Temporal, or a race): the apply activity decides."""
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0", "1.1.0")
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    refused = await installs.failure(name, Op.UPGRADE, version="1.1.0")
    assert refused.type == "consent_required"
    assert "cap:http.fetch" in refused.message and "api.example.com" in refused.message
    assert await history(db_pool, installs.tenant, name) == [("install", None, "1.0.0")]
    rejected = await db_pool.fetchval(
        "SELECT after FROM audit_events WHERE tenant_id = $1 AND action = 'upgrade_rejected'", installs.tenant
    )
    assert rejected is not None and rejected["error"] == "consent_required"

    r = await installs.apply(name, Op.UPGRADE, version="1.1.0", accept=GROWTH)
    assert r.granted == GrantSet.of(
        ["cap:context.read", "cap:http.fetch", "cap:log.emit", "cap:user.read"], ["api.example.com"]
    )
    after = await db_pool.fetchval(
        "SELECT after FROM audit_events WHERE tenant_id = $1 AND action = 'upgrade'", installs.tenant
    )
    assert after["consent"]["accepted"] == GROWTH.as_json()


async def test_refusals_name_their_reason_and_change_nothing(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0", "1.1.0")
    assert (await installs.failure(name, Op.INSTALL, version="9.9.9")).type == "not_found"
    assert (await installs.failure(unique_name(), Op.INSTALL, version="1.0.0")).type == "not_found"
    assert (await installs.failure(name, Op.UPGRADE, version="1.1.0")).type == "not_found"  # not installed
    handle = client.get_workflow_handle(install_workflow_id(installs.tenant, name))
    accepted = await accepted_updates(handle)
    assert accepted == 2  # the two refusals above for this extension: accepted, then their child failed
    rejected = await installs.failure(name, Op.INSTALL)  # validator: no version
    assert rejected.type == "invalid_request"
    assert (await installs.failure(name, Op.DISABLE, config={"a": "b"})).type == "invalid_request"
    assert await accepted_updates(handle) == accepted  # rejected by the validator: not in history

    await installs.apply(name, Op.INSTALL, version="1.0.0")
    assert (await installs.failure(name, Op.ROLLBACK)).type == "conflict"  # no previous version
    await db_pool.execute("UPDATE versions SET status = 'revoked' WHERE version = '1.1.0'")
    assert (await installs.failure(name, Op.UPGRADE, version="1.1.0")).type == "version_not_installable"
    # Never run here (the registry test covers a revoked rollback target).
    assert (await installs.failure(name, Op.ROLLBACK, version="1.1.0")).type == "version_not_in_history"
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and (got.version, got.revision) == ("1.0.0", 1)


async def test_upgrade_and_rollback_check_the_config_against_the_target_schema(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    """The config carries over a version change, so the target version's config_schema must accept it:
    a guest never runs with a config its own manifest refuses."""
    name = unique_name()
    loose: dict[str, Any] = {"type": "object", "properties": {"greeting": {"type": "string"}}}
    strict: dict[str, Any] = {
        "type": "object",
        "properties": {"greeting": {"type": "string"}, "color": {"type": "string"}},
        "required": ["color"],
    }
    for version, schema in (("1.0.0", loose), ("2.0.0", strict)):
        doc = manifest(name, version, capabilities=["cap:log.emit"], config_schema=schema)
        await publish_version(client, task_queue, store, signer, tmp_path, doc)
    await installs.apply(name, Op.INSTALL, version="1.0.0", config={"greeting": "hi"})

    refused = await installs.failure(name, Op.UPGRADE, version="2.0.0")
    assert refused.type == "invalid_config", refused
    assert f"the install's config (version 1) for {name}@2.0.0" in refused.message
    assert "$: missing required property color" in refused.message
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and (got.version, got.revision) == ("1.0.0", 1)

    await installs.apply(name, Op.SET_CONFIG, config={"greeting": "hi", "color": "red"})  # fits both
    assert (await installs.apply(name, Op.UPGRADE, version="2.0.0")).version == "2.0.0"
    assert (await installs.apply(name, Op.ROLLBACK)).version == "1.0.0"
    await installs.apply(name, Op.SET_CONFIG, config={"greeting": "only"})  # fits 1.0.0 alone
    refused = await installs.failure(name, Op.UPGRADE, version="2.0.0")
    assert refused.type == "invalid_config" and "(version 3)" in refused.message


async def test_concurrent_upgrade_and_rollback_serialize(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    # Same grants: whichever of the two runs first, the other needs no consent.
    name = await publish_versions(
        client, task_queue, store, signer, tmp_path, "1.0.0", "1.1.0", "1.2.0", same_grants=True
    )
    await installs.apply(name, Op.INSTALL, version="1.0.0")
    await installs.apply(name, Op.UPGRADE, version="1.1.0")

    up, back = await asyncio.gather(
        installs.apply(name, Op.UPGRADE, version="1.2.0"), installs.apply(name, Op.ROLLBACK)
    )

    assert sorted([up.revision, back.revision]) == [3, 4]
    steps = await history(db_pool, installs.tenant, name)
    assert len(steps) == 4
    for (_, _, prev_to), (_, frm, _) in zip(steps, steps[1:], strict=False):
        assert frm == prev_to  # every change starts where the previous one ended: no lost update
    first, second = (up, back) if up.revision == 3 else (back, up)
    assert second.previous_version == first.version
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and (got.version, got.revision) == (second.version, 4)


async def test_entity_continues_as_new_and_keeps_its_idempotency_memory(
    client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    installs.max_changes_per_run = 2
    name = await publish_versions(client, task_queue, store, signer, tmp_path, "1.0.0")
    first = await installs.apply(name, Op.INSTALL, version="1.0.0", request_id="a")
    handle = client.get_workflow_handle(install_workflow_id(installs.tenant, name))
    first_run = (await handle.describe()).run_id

    async def continued() -> str | None:
        desc = await handle.describe()
        return desc.run_id if desc.run_id != first_run else None

    await installs.apply(name, Op.DISABLE, request_id="b")  # the second change: continue-as-new
    await eventually(continued, what="a new run of the install entity")
    assert (await installs.apply(name, Op.ENABLE, request_id="c")).revision == 3

    assert await installs.apply(name, Op.INSTALL, version="1.0.0", request_id="a") == first  # remembered
    state = await handle.query(INSTALL_STATE_QUERY, result_type=InstallState)
    assert state.order == ["a", "b", "c"] and state.changes == 3
    got = await read.resolve_install(db_pool, installs.tenant, name)
    assert got is not None and (got.revision, got.status) == (3, "active")


async def _raw_histories(raw_client: Client, tenant: str, name: str) -> str:
    """Every event of the install entity and its change workflows, as the server stores them (payloads
    stay encrypted; failure messages are in clear)."""
    from google.protobuf.json_format import MessageToJson

    texts = []
    async for wf in raw_client.list_workflows(
        f"WorkflowId STARTS_WITH '{install_workflow_id(tenant, name)}'"
    ):
        history = await raw_client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        texts += [MessageToJson(e) for e in history.events]
    return "\n".join(texts)


async def test_rejected_config_values_never_reach_temporal_failures(
    client: Client,
    raw_client: Client,
    task_queue: str,
    worker: None,
    db_pool: asyncpg.Pool,
    store: FilesystemBlobStore,
    signer: Signer,
    tmp_path: Path,
    installs: Installs,
) -> None:
    """jsonschema's messages start with the value they reject; a refused config travels into the
    change's Temporal failure (clear text in history and Temporal UI), its audit row and the API answer.
    The messages name the path and the rule only."""
    value = "sk-live-" + uuid.uuid4().hex
    name = unique_name()
    loose: dict[str, Any] = {"type": "object"}
    strict: dict[str, Any] = {
        "type": "object",
        "properties": {
            "port": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["fast", "safe"]},
            "tag": {"type": "string", "maxLength": 4, "pattern": "^x"},
            "nested": {"type": "object", "properties": {"n": {"const": 1}}},
        },
        "required": ["port"],
        "additionalProperties": False,
    }
    for version, schema in (("1.0.0", strict), ("2.0.0", loose), ("3.0.0", strict)):
        doc = manifest(name, version, capabilities=["cap:log.emit"], config_schema=schema)
        await publish_version(client, task_queue, store, signer, tmp_path, doc)
    # Names are shown (as secret names are: they are not secret), values never.
    bad = {"port": value, "mode": value, "tag": value, "nested": {"n": value}, "colour": value}

    refusals = [await installs.failure(name, Op.INSTALL, version="1.0.0", config=bad)]
    await installs.apply(name, Op.INSTALL, version="2.0.0", config=bad)  # its schema takes anything
    refusals.append(await installs.failure(name, Op.UPGRADE, version="3.0.0"))  # the config carries over
    await installs.apply(name, Op.SET_CONFIG, config={"port": 1})
    await installs.apply(name, Op.UPGRADE, version="3.0.0")
    refusals.append(await installs.failure(name, Op.SET_CONFIG, config=bad))

    for refused in refusals:
        assert refused.type == "invalid_config", refused
        assert value not in refused.message and value not in repr(refused.details), refused
    assert "$.port: must be of type integer" in refusals[-1].message, refusals[-1].message
    assert "must be one of" in refusals[-1].message and "unexpected property colour" in refusals[-1].message
    assert value not in await _raw_histories(raw_client, installs.tenant, name)
    audit = await db_pool.fetch(
        "SELECT action, before::text AS b, after::text AS a FROM audit_events WHERE extension_name = $1", name
    )
    assert any(r["action"].endswith("_rejected") for r in audit), audit
    # Refusals name no value; an accepted config's values are in its rows' before/after by design.
    refused_rows = [r for r in audit if r["action"].endswith("_rejected")]
    assert not any(value in (r["b"] or "") + (r["a"] or "") for r in refused_rows)
