"""The register transaction's own namespace check: the claim, its retry, and a claim lost to a race."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from core.errors import Conflict, Forbidden
from registry import read_namespaces, write
from registry.write import RegisteredVersion
from schema.errors import ErrorCode
from tests.workflows.helpers import Signer, manifest

pytestmark = pytest.mark.integration


async def register(
    pool: asyncpg.Pool, signer: Signer, doc: dict[str, Any], *, claim: str
) -> RegisteredVersion:
    digest = (
        "sha256:" + hashlib.sha256(f"{doc['name']}@{doc['version']}/{signer.publisher}".encode()).hexdigest()
    )
    return await write.register_version(
        pool,
        content_hash=digest,
        storage_key=f"bundles/{digest[7:]}.tar.zst",
        size=10,
        signature="c2ln",
        signer_key_id=signer.key_id,
        verified_at=datetime.now(UTC),
        manifest=doc,
        workflow_id=f"publish/{digest[7:]}",
        claim_namespace=claim,
    )


async def test_a_claim_is_reported_again_on_retry_and_lost_claims_roll_back(db_pool: asyncpg.Pool) -> None:
    cpother, cptest = Signer("cpother"), Signer("cptest")
    await cpother.trust(db_pool)
    await cptest.trust(db_pool)

    doc = manifest("com.cpother.a", publisher="cpother")
    first = await register(db_pool, cpother, doc, claim="com.cpother")
    retry = await register(db_pool, cpother, doc, claim="com.cpother")
    assert (first.created, first.claimed_namespace) == (True, "com.cpother")
    assert (retry.created, retry.claimed_namespace) == (False, "com.cpother")

    # cptest's workflow saw com.cpother unclaimed before cpother committed: the transaction refuses.
    with pytest.raises(Forbidden) as info:
        await register(db_pool, cptest, manifest("com.cpother.b", publisher="cptest"), claim="com.cpother")
    assert info.value.code is ErrorCode.NAMESPACE_OWNED
    assert await db_pool.fetchval("SELECT count(*) FROM extensions WHERE name = 'com.cpother.b'") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM bundles") == 1
    ns = await read_namespaces.namespace_of(db_pool, "com.cpother.b")
    assert ns is not None and (ns.publisher, ns.source) == ("cpother", "claimed")

    # A namespace registered after the workflow's check (no claim asked) still wins at commit.
    await write.register_namespace(
        db_pool, prefix="com.cptest.team", publisher="cpother", workflow_id="wf", created_by="admin"
    )
    with pytest.raises(Forbidden):
        await register(db_pool, cptest, manifest("com.cptest.team.x", publisher="cptest"), claim="")
    with pytest.raises(Conflict):
        await write.register_namespace(
            db_pool, prefix="com.cptest.team", publisher="cptest", workflow_id="wf", created_by="admin"
        )
