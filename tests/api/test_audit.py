"""`GET /v1/audit` filters: tenant, extension, since, action (exact or `prefix*`), limit; bad values are
400 invalid_request naming the parameter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.api.conftest import ADMIN, bearer, insert_token, new_token

pytestmark = [pytest.mark.integration]

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def add_event(
    pool: asyncpg.Pool, tenant: str, action: str, at: datetime, extension: str = "com.a.b"
) -> None:
    await pool.execute(
        """INSERT INTO audit_events (workflow_id, run_id, step, actor, action, tenant_id, extension_name, at)
           VALUES ($1, 'run', 'change', 'admin', $2, $3, $4, $5)""",
        f"install/{tenant}/{extension}/change/{uuid.uuid4().hex}",
        action,
        tenant,
        extension,
        at,
    )


async def actions(api: httpx.AsyncClient, query: str, headers: dict[str, str] = ADMIN) -> list[str]:
    resp = await api.get(f"/v1/audit?{query}", headers=headers)
    assert resp.status_code == 200, resp.text
    return [e["action"] for e in resp.json()]


async def test_since_and_action_filter_the_audit(api: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    t = f"t-{uuid.uuid4().hex[:10]}"
    await add_event(db_pool, t, "install", BASE)
    await add_event(db_pool, t, "install_noop", BASE + timedelta(hours=1))
    await add_event(db_pool, t, "upgrade", BASE + timedelta(hours=2))
    await add_event(db_pool, t, "install_quarantined", BASE + timedelta(hours=3), extension="com.a.c")
    await add_event(db_pool, t, "installx", BASE + timedelta(hours=4))

    assert await actions(api, f"tenant={t}") == [
        "installx",
        "install_quarantined",
        "upgrade",
        "install_noop",
        "install",
    ]
    # since is inclusive, and any zone names the same instant.
    assert await actions(api, f"tenant={t}&since=2026-03-01T14:00:00Z") == [
        "installx",
        "install_quarantined",
        "upgrade",
    ]
    assert await actions(api, f"tenant={t}&since=2026-03-01T16:00:00%2B02:00") == [
        "installx",
        "install_quarantined",
        "upgrade",
    ]
    assert await actions(api, f"tenant={t}&action=install") == ["install"]
    # A prefix is literal: `_` is no wildcard, so install* matches installx but install_* does not.
    assert await actions(api, f"tenant={t}&action=install_*") == ["install_quarantined", "install_noop"]
    assert await actions(api, f"tenant={t}&action=install*&since=2026-03-01T13:00:00Z&limit=2") == [
        "installx",
        "install_quarantined",
    ]
    assert await actions(api, f"tenant={t}&action=install*&extension=com.a.c") == ["install_quarantined"]
    assert await actions(api, f"tenant={t}&since=2026-03-02T00:00:00Z") == []

    # A tenant token gets the same filters over its own tenant only.
    token = new_token()
    await insert_token(db_pool, token, scopes=["installs:manage"], tenant_id=t)
    await add_event(db_pool, f"{t}-other", "install", BASE + timedelta(hours=5))
    assert await actions(api, "action=install", headers=bearer(token)) == ["install"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=yesterday", "since"),
        ("since=2026-03-01T12:00:00", "since"),  # no time zone
        ("since=2026-03-01", "since"),
        ("since=1h", "since"),  # relative times are the CLI's
        ("action=Install", "action"),
        ("action=in*stall", "action"),
        ("action=*", "action"),
        ("action=install%25", "action"),
        ("limit=0", "limit"),
    ],
)
async def test_bad_filters_are_invalid_requests_naming_the_parameter(
    api: httpx.AsyncClient, query: str, parameter: str
) -> None:
    resp = await api.get(f"/v1/audit?{query}", headers=ADMIN)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert parameter in body["message"]
    value = query.split("=", 1)[1]
    if len(value) > 2:  # "*" or "0" occur in any sentence
        assert value not in body["message"]
