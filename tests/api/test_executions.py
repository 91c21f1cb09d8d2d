"""`GET /v1/tenants/{tenant}/executions` over real Postgres; rows inserted by SQL, as the gateway's
batched COPY (api/gateway/execlog.py) would leave them."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from core.errors import InvalidInput
from registry.read_operator import list_executions
from tests.api.conftest import ADMIN, bearer, insert_token, new_token

pytestmark = pytest.mark.integration

FIELDS = {
    "id",
    "request_id",
    "extension",
    "version",
    "install_id",
    "method",
    "endpoint",
    "status",
    "outcome",
    "duration_ms",
    "fuel_consumed",
    "principal",
    "operator",
    "at",
}


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def insert(
    pool: asyncpg.Pool,
    tenant_id: str,
    extension: str,
    *,
    age_s: float,
    fuel: int | None = 1234,
    principal: str = "token:00000000-0000-0000-0000-000000000001",
    operator: bool = False,
    outcome: str = "ok",
) -> int:
    row_id: int = await pool.fetchval(
        """INSERT INTO execution_log (request_id, tenant_id, extension_name, version, install_id, method,
                                      endpoint, status, outcome, duration_ms, principal, operator,
                                      fuel_consumed, at)
           VALUES ($1, $2, $3, '1.0.0', gen_random_uuid(), 'GET', '/items/:id', 200, $4, 1.5, $5, $6, $7,
                   now() - make_interval(secs => $8))
           RETURNING id""",
        uuid.uuid4().hex,
        tenant_id,
        extension,
        outcome,
        principal,
        operator,
        fuel,
        age_s,
    )
    return row_id


async def listed(api: httpx.AsyncClient, tenant_id: str, **params: Any) -> list[dict[str, Any]]:
    resp = await api.get(f"/v1/tenants/{tenant_id}/executions", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()
    return rows


@pytest.fixture
async def seeded(db_pool: asyncpg.Pool) -> tuple[str, str, list[int]]:
    """Tenant a: 7 calls (x and y interleaved; ids newest first); tenant b: 3 calls to x."""
    a, b = tenant(), tenant()
    ids = []
    for n in range(7):
        ids.append(await insert(db_pool, a, "com.acme.x" if n % 3 else "com.acme.y", age_s=100 - n))
        if n < 3:  # interleaved, so b's ids fall between a's
            await insert(db_pool, b, "com.acme.x", age_s=99.5 - n)
    return a, b, ids[::-1]


async def test_lists_one_tenant_newest_first(
    api: httpx.AsyncClient, seeded: tuple[str, str, list[int]]
) -> None:
    a, _b, newest_first = seeded
    rows = await listed(api, a)
    assert [r["id"] for r in rows] == newest_first
    assert set(rows[0]) == FIELDS
    assert all(r["extension"] in ("com.acme.x", "com.acme.y") for r in rows)
    assert (rows[0]["fuel_consumed"], rows[0]["operator"], rows[0]["method"]) == (1234, False, "GET")
    assert rows[0]["principal"].startswith("token:") and rows[0]["endpoint"] == "/items/:id"
    assert [r["at"] for r in rows] == sorted((r["at"] for r in rows), reverse=True)


async def test_extension_filter_limit_and_before_page_through(
    api: httpx.AsyncClient, seeded: tuple[str, str, list[int]]
) -> None:
    a, _b, newest_first = seeded
    only_x = await listed(api, a, extension="com.acme.x")
    assert only_x and {r["extension"] for r in only_x} == {"com.acme.x"}
    assert len(only_x) == 4
    assert await listed(api, a, extension="com.acme.none") == []

    pages: list[list[int]] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} if before is None else {"limit": 3, "before": before}
        page = [r["id"] for r in await listed(api, a, **params)]
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == newest_first

    x_page = await listed(api, a, extension="com.acme.x", limit=2, before=only_x[1]["id"])
    assert [r["id"] for r in x_page] == [r["id"] for r in only_x[2:4]]


async def test_before_orders_by_time_and_a_foreign_cursor_leaks_nothing(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, seeded: tuple[str, str, list[int]]
) -> None:
    a, b, newest_first = seeded
    # Written last (highest id) but stamped oldest: a slower gateway's batch. It sorts by its time.
    late = await insert(db_pool, a, "com.acme.x", age_s=1000)
    rows = await listed(api, a)
    assert [r["id"] for r in rows] == [*newest_first, late]
    assert [r["id"] for r in await listed(api, a, before=newest_first[-1])] == [late]

    # A cursor that is not a row of this tenant (another tenant's, or pruned) falls back to id < before.
    b_row = (await listed(api, b))[0]["id"]
    older = await listed(api, a, before=b_row)
    assert older and {r["id"] for r in older} == {i for i in newest_first if i < b_row}
    assert [r["id"] for r in await listed(api, a, before=2**62)] == [*newest_first, late]


async def test_operator_columns_and_missing_fuel_round_trip(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    a = tenant()
    await insert(db_pool, a, "com.acme.x", age_s=2, fuel=None, outcome="rate_limited")
    await insert(db_pool, a, "com.acme.x", age_s=1, principal="admin", operator=True)
    operator_call, limited = await listed(api, a)
    assert (operator_call["principal"], operator_call["operator"]) == ("admin", True)
    assert (limited["outcome"], limited["fuel_consumed"]) == ("rate_limited", None)


async def test_tenant_tokens_read_only_their_tenant(
    api: httpx.AsyncClient, db_pool: asyncpg.Pool, seeded: tuple[str, str, list[int]]
) -> None:
    a, b, newest_first = seeded
    manager_a = new_token()
    await insert_token(db_pool, manager_a, scopes=["installs:manage"], tenant_id=a)
    h = bearer(manager_a)
    own = await api.get(f"/v1/tenants/{a}/executions", headers=h)
    assert own.status_code == 200 and [r["id"] for r in own.json()] == newest_first

    # Exactly as the other tenant-scoped reads refuse another tenant: 403 tenant_mismatch, no rows.
    refused = await api.get(f"/v1/tenants/{b}/executions", headers=h)
    assert refused.status_code == 403, refused.text
    assert set(refused.json()) == {"error", "message", "request_id"}
    assert refused.json()["error"] == "tenant_mismatch"
    for other in (f"/v1/debug-sessions?tenant={b}", f"/v1/audit?tenant={b}"):
        same = await api.get(other, headers=h)
        assert (same.status_code, same.json()["error"]) == (403, "tenant_mismatch")

    reader = new_token()
    await insert_token(db_pool, reader, scopes=["ext:read"], tenant_id=a)
    resp = await api.get(f"/v1/tenants/{a}/executions", headers=bearer(reader))
    debug_sessions = await api.get("/v1/debug-sessions", headers=bearer(reader))
    assert debug_sessions.status_code == 403
    assert (resp.status_code, resp.json()["error"]) == (403, "forbidden")
    assert (await api.get(f"/v1/tenants/{a}/executions")).status_code == 401


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
        ("before=0", "before"),
        ("before=-3", "before"),
        ("before=abc", "before"),
        (f"before={2**63}", "before"),
    ],
)
async def test_bad_limit_or_before_is_invalid_request(api: httpx.AsyncClient, query: str, param: str) -> None:
    resp = await api.get(f"/v1/tenants/{tenant()}/executions?{query}", headers=ADMIN)
    # The operator API answers every request-validation failure 400 invalid_request (api/errors.py).
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error"] == "invalid_request"
    assert body["message"].startswith(f"query.{param}: "), body["message"]


async def test_the_query_refuses_out_of_range_pages_itself(db_pool: asyncpg.Pool) -> None:
    for limit in (0, 1001):
        with pytest.raises(InvalidInput, match="limit"):
            await list_executions(db_pool, tenant(), limit=limit)
    for before in (0, 2**63):
        with pytest.raises(InvalidInput, match="before"):
            await list_executions(db_pool, tenant(), before_id=before)
