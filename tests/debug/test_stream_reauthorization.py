"""An open SSE debug stream re-checks its access at every heartbeat (issue 11, item 10).

The shared stack's gateway (`python -m api.gateway`, heartbeat 0.5 s) streams; the registry is changed
under it by SQL, the way a revocation, a scope change or a new install revision leaves it. The stream
must end with a `session_end` event naming why, and its audit row must say `access_revoked`.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from api.auth import token_hash
from tests.debug.conftest import Stack, eventually
from tests.debug.test_debug_stream import names, sse

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

CHANGES = {
    "revoked": (
        "UPDATE api_tokens SET revoked_at = now() WHERE token_hash = $1",
        "token_invalid",
        "revoked",
    ),
    "expired": (
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        "token_invalid",
        "expired",
    ),
    "deleted": ("DELETE FROM api_tokens WHERE token_hash = $1", "token_invalid", "unknown"),
    "scope_removed": (
        "UPDATE api_tokens SET scopes = array_remove(scopes, 'ext:debug') WHERE token_hash = $1",
        "scope_removed",
        "ext:debug",
    ),
    "grant_removed": (
        """UPDATE installs SET granted_capabilities = array_remove(granted_capabilities, 'cap:debug.logs')
           WHERE id = $1::uuid""",
        "debug_not_granted",
        "cap:debug.logs",
    ),
    "uninstalled": ("DELETE FROM installs WHERE id = $1::uuid", "install_gone", "no longer installed"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_stream_ends_at_the_next_heartbeat_when_access_goes(stack: Stack, change: str) -> None:
    sql, code, reason = CHANGES[change]
    tenant, ext = names()
    install_id = await stack.install(tenant, ext)
    token = await stack.token(tenant, "ext:read", "ext:debug")
    conn = await asyncpg.connect(stack.db_url)
    try:
        async with sse(stack.gateway.url, token, {"extension": ext, "tail": 0}) as reader:
            session = reader.response.headers["x-debug-session"]
            # Live before the change (a healthy session passing its re-checks is the expiry test's).
            assert (await stack.call(token, ext, "/chatty?tag=live")).status_code == 200
            await reader.until(lambda e: e.data.get("message") == "log live")
            # $1 is the token's hash in the token changes, the install id in the install ones.
            await conn.execute(sql, install_id if "installs" in sql else token_hash(token))
            end = await reader.until(lambda e: e.event == "session_end", timeout_s=20)
            assert end.data["code"] == code
            assert reason in end.data["message"]
            assert token not in str(end.data)
            with pytest.raises(EOFError):
                await reader.next(timeout_s=10)

        async def ended() -> asyncpg.Record | None:
            row = await conn.fetchrow(
                "SELECT ended_at, end_reason FROM debug_sessions WHERE id = $1", uuid.UUID(session)
            )
            return row if row is not None and row["ended_at"] is not None else None

        row = await eventually(ended)
        assert row["end_reason"] == "access_revoked"
    finally:
        await conn.close()


async def test_operator_debug_flag_cleared_mid_stream_ends_it(stack: Stack) -> None:
    """An install opened only by the operator flag (no cap:debug.logs) closes when the flag is cleared."""
    tenant, ext = names()
    install_id = await stack.install(tenant, ext, capabilities=())
    token = await stack.token(tenant, "ext:read", "ext:debug")
    conn = await asyncpg.connect(stack.db_url)
    try:
        await conn.execute("UPDATE installs SET debug_enabled = true WHERE id = $1", uuid.UUID(install_id))
        async with sse(stack.gateway.url, token, {"extension": ext, "tail": 0}) as reader:
            await conn.execute(
                "UPDATE installs SET debug_enabled = false WHERE id = $1", uuid.UUID(install_id)
            )
            end = await reader.until(lambda e: e.event == "session_end", timeout_s=20)
            assert end.data["code"] == "debug_not_granted"
    finally:
        await conn.close()
