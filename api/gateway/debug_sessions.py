"""The audit of debug-stream viewing sessions: one `debug_sessions` row per session (0002 migration).

Like execution_log (api/gateway/execlog.py) this is telemetry the gateway writes itself, not registry
state: a viewing session changes nothing, so no workflow records it. Unlike execution_log it is
written synchronously and fail-closed at the start: a session whose audit row cannot be written is
refused (503), because "who watched which tenant's logs" must never have gaps. The end (ended_at,
events_sent, end_reason) is an UPDATE of the same row; a row whose ended_at stays NULL belonged to a
gateway process that died mid-session.

Polling clients (`POST /api/ext-debug/stream`) get the row id back as `session` and pass it on the
next poll: each poll then adds to the same row instead of writing a new one.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from api.gateway.auth import Caller
from core.db import map_db_errors

log = structlog.get_logger(__name__)

END_REASONS = frozenset(
    {"client_closed", "session_expired", "server_shutdown", "error", "poll", "access_revoked"}
)


@dataclass(frozen=True, kw_only=True)
class SessionStart:
    caller: Caller
    extension: str
    install_id: str
    filters: dict[str, Any] = field(default_factory=dict)
    transport: str  # "sse" | "poll"
    request_id: str


def _token_uuid(caller: Caller) -> uuid.UUID | None:
    try:
        return uuid.UUID(caller.principal.token_id) if caller.principal.token_id else None
    except ValueError:
        return None


class DebugSessions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(self, s: SessionStart) -> str:
        """Insert the row (raises core.errors.Unavailable when Postgres is down: the caller refuses)."""
        async with map_db_errors():
            sid = await self._pool.fetchval(
                """INSERT INTO debug_sessions (principal, token_id, operator, tenant_id, extension_name,
                                               install_id, filters, transport, request_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id""",
                s.caller.subject,
                _token_uuid(s.caller),
                s.caller.operator,
                s.caller.tenant_id,
                s.extension,
                uuid.UUID(s.install_id),
                s.filters,
                s.transport,
                s.request_id,
                timeout=5.0,
            )
        return str(sid)

    async def finish(self, session_id: str, *, events_sent: int, reason: str) -> None:
        """Close the row. Shielded: a cancelled request (client gone, shutdown) still records its end."""
        assert reason in END_REASONS

        async def write() -> None:
            await self._pool.execute(
                """UPDATE debug_sessions SET ended_at = now(), events_sent = $2, end_reason = $3
                   WHERE id = $1""",
                uuid.UUID(session_id),
                events_sent,
                reason,
                timeout=5.0,
            )

        try:
            await asyncio.shield(write())
        except Exception as exc:  # the stream already ended; an unwritable end is logged, not raised
            log.warning("debug_session_end_unrecorded", session_id=session_id, error=type(exc).__name__)

    async def poll(self, s: SessionStart, session_id: str | None, *, events_sent: int) -> str:
        """Record one poll: add to the caller's own open poll row `session_id`, or start a new one."""
        if session_id is not None:
            try:
                sid = uuid.UUID(session_id)
            except ValueError:
                sid = None
            if sid is not None:
                async with map_db_errors():
                    found = await self._pool.fetchval(
                        """UPDATE debug_sessions
                           SET ended_at = now(), events_sent = events_sent + $2, end_reason = 'poll'
                           WHERE id = $1 AND transport = 'poll' AND principal = $3 AND tenant_id = $4
                             AND extension_name = $5
                           RETURNING id""",
                        sid,
                        events_sent,
                        s.caller.subject,
                        s.caller.tenant_id,
                        s.extension,
                        timeout=5.0,
                    )
                if found is not None:
                    return str(found)
        new_id = await self.start(s)
        await self.finish(new_id, events_sent=events_sent, reason="poll")
        return new_id
