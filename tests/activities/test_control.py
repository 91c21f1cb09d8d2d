"""Secrets, audit and notify activities alone (ActivityEnvironment) against real Postgres and Redis."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities
from activities.notify import NotifyActivities
from activities.secrets import SecretsActivities
from core.codec import seal_secrets
from schema.payloads.audit import AuditInput
from schema.payloads.notify import INVALIDATE_CHANNEL, InvalidateInput
from schema.payloads.secrets import SetSecretsInput
from tests.workflows.helpers import eventually, fixed_keyring

pytestmark = pytest.mark.integration


async def test_audit_row_is_written_once_per_step(db_pool: asyncpg.Pool) -> None:
    inp = AuditInput(
        workflow_id="wf",
        run_id="run",
        step="change",
        actor="alice",
        action="install",
        tenant_id="t1",
        extension_name="com.acme.x",
        before=None,
        after={"revision": 1},
    )
    acts = AuditActivities(db_pool)

    first = await ActivityEnvironment().run(acts.record_audit, inp)
    second = await ActivityEnvironment().run(acts.record_audit, inp)

    assert (first.inserted, second.inserted) == (True, False)
    rows = await db_pool.fetch("SELECT actor, action, after FROM audit_events")
    assert [(r["actor"], r["action"], r["after"]) for r in rows] == [("alice", "install", {"revision": 1})]


async def test_invalidation_reaches_subscribers(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(INVALIDATE_CHANNEL)
    install_id = str(uuid.uuid4())
    try:
        result = await ActivityEnvironment().run(
            NotifyActivities(client).publish_invalidation,
            InvalidateInput(tenant_id="t1", extension="com.acme.x", install_id=install_id, revision=7),
        )

        async def received() -> dict[str, object] | None:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is None:
                return None
            body: dict[str, object] = json.loads(msg["data"])
            return body if body["install_id"] == install_id else None

        body = await eventually(received, timeout=10)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    assert result.receivers >= 1
    assert body == {"tenant_id": "t1", "extension": "com.acme.x", "install_id": install_id, "revision": 7}


async def test_secrets_sealed_with_a_foreign_keyring_are_refused(db_pool: asyncpg.Pool) -> None:
    import hashlib

    from core.crypto import Keyring

    foreign = Keyring({1: hashlib.sha256(b"someone else").digest()})
    inp = SetSecretsInput(
        tenant_id="t1", extension="com.acme.x", sealed=seal_secrets(foreign, {"K": "v"}), workflow_id="wf"
    )
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(SecretsActivities(db_pool, fixed_keyring(1)).set_secrets, inp)
    assert info.value.non_retryable
    assert "do not open" in info.value.message


async def test_secrets_for_a_missing_install_are_not_found(db_pool: asyncpg.Pool) -> None:
    ring = fixed_keyring(1)
    inp = SetSecretsInput(
        tenant_id="t1", extension="com.acme.x", sealed=seal_secrets(ring, {"K": "v"}), workflow_id="wf"
    )
    with pytest.raises(ApplicationError) as info:
        await ActivityEnvironment().run(SecretsActivities(db_pool, ring).set_secrets, inp)
    assert info.value.type == "not_found"
