"""An open debug stream ends when its token is revoked through the operator API (RevokeToken workflow),
not only when the row is changed by SQL (test_stream_reauthorization.py): the stream's heartbeat
re-check reads the token uncached and finds it revoked."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.operator.app import create_app
from core.crypto import Keyring
from core.db import create_pool
from tests.api.conftest import ADMIN, control_workers, keyring, make_settings, temporal_client  # noqa: F401
from tests.debug.conftest import Stack, eventually, limiter_redis_url
from tests.debug.test_debug_stream import names, sse

pytestmark = [pytest.mark.integration, pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(600)]


async def test_revoking_through_the_api_ends_an_open_stream(
    stack: Stack,
    temporal_client: Client,  # noqa: F811
    temporal_address: str,
    task_queue: str,
    keyring: Keyring,  # noqa: F811
    worker_id_num: int,
    tmp_path: Path,
) -> None:
    master = ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in keyring.keys.items())
    settings = make_settings(
        database_url=stack.db_url,
        temporal_address=temporal_address,
        control_task_queue=task_queue,
        data_dir=tmp_path,
        master_keys=master,
    )
    tenant, ext = names()
    install_id = await stack.install(tenant, ext)
    pool = await create_pool(stack.db_url, min_size=1, max_size=4)  # with the registry's JSON codecs
    app = create_app(settings)
    try:
        async with (
            control_workers(
                temporal_client,
                task_queue,
                pool=pool,
                data_dir=tmp_path,
                redis_url=limiter_redis_url(worker_id_num),
                keyring=keyring,
            ),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api", timeout=60) as api,
        ):
            made = await api.post(
                "/v1/tokens",
                json={"tenant_id": tenant, "scopes": ["ext:read", "ext:debug"], "name": "viewer"},
                headers=ADMIN,
            )
            assert made.status_code == 200, made.text
            token, token_id = made.json()["token"], made.json()["token_id"]
            async with sse(stack.gateway.url, token, {"extension": ext, "tail": 0}) as reader:
                session = reader.response.headers["x-debug-session"]
                assert (await stack.call(token, ext, "/chatty?tag=live")).status_code == 200
                await reader.until(lambda e: e.data.get("message") == "log live")
                revoked = await api.post(f"/v1/tokens/{token_id}/revoke", headers=ADMIN)
                assert revoked.status_code == 200, revoked.text
                end = await reader.until(lambda e: e.event == "session_end", timeout_s=20)
                assert end.data["code"] == "token_invalid" and "revoked" in end.data["message"]
                assert token not in str(end.data)
                with pytest.raises(EOFError):
                    await reader.next(timeout_s=10)

        async def ended() -> asyncpg.Record | None:
            row = await pool.fetchrow(
                "SELECT ended_at, end_reason FROM debug_sessions WHERE id = $1", uuid.UUID(session)
            )
            return row if row is not None and row["ended_at"] is not None else None

        assert (await eventually(ended))["end_reason"] == "access_revoked"
        assert install_id
    finally:
        await app.state.resources.aclose()
        await pool.close()
