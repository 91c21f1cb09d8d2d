"""Re-authorization of an open debug stream (docs/debug-stream.md "Access re-checks").

An SSE session may last `debug_max_session_seconds` (15 min). Authorizing it only at the start would
let a revoked token, a removed `ext:debug` scope or a withdrawn `cap:debug.logs` grant keep reading a
tenant's logs until then. So every `debug_heartbeat_seconds` the stream asks `recheck`, which reads
the registry uncached (one token row, one install row: two small queries per session per heartbeat):

    token still valid (not revoked, expired or deleted)   else token_invalid
    token still holds ext:debug (admin, when global)      else scope_removed
    the same install still exists                         else install_gone
    it still grants cap:debug.logs or has debug_enabled   else debug_not_granted
    Postgres answered                                     else reauthorization_unavailable (fail closed)

A failed check ends the stream with a `session_end` event naming the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.auth import ADMIN
from api.gateway.auth import Caller
from api.gateway.resources import Resources
from core.errors import Unauthorized, Unavailable
from registry.read_debug import DEBUG_CAPABILITY, debug_install


@dataclass(frozen=True, slots=True)
class AccessEnded:
    code: str
    message: str

    @property
    def end_reason(self) -> str:
        """The debug_sessions.end_reason of a session ended by this check."""
        return "error" if self.code == "reauthorization_unavailable" else "access_revoked"


async def recheck(res: Resources, caller: Caller, extension: str, install_id: str) -> AccessEnded | None:
    """None while the viewer may go on watching; else why it may not."""
    try:
        principal = await res.auth.authenticator.current(caller.principal)
        if caller.operator and ADMIN not in principal.scopes:
            return AccessEnded("scope_removed", "the global token no longer holds the admin scope")
        if not principal.has("ext:debug"):
            return AccessEnded("scope_removed", "the token no longer holds the ext:debug scope")
        install = await debug_install(res.pool, caller.tenant_id, extension)
    except Unauthorized as err:
        return AccessEnded("token_invalid", err.message)
    except Unavailable:
        return AccessEnded(
            "reauthorization_unavailable", "the registry cannot be reached to re-check this session"
        )
    if install is None or install.install_id != install_id:
        return AccessEnded("install_gone", f"{extension} is no longer installed for this tenant")
    if not install.debuggable:
        return AccessEnded(
            "debug_not_granted",
            f"the install of {extension} no longer grants {DEBUG_CAPABILITY} and debugging is not enabled",
        )
    return None
