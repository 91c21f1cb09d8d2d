-- A debug viewing session can end because its access went away mid-stream: the gateway re-checks the
-- token, its ext:debug scope and the install's cap:debug.logs grant / debug flag at every heartbeat
-- (api/gateway/debug_access.py) and ends the stream with end_reason 'access_revoked'. Forward-only;
-- replacing a CHECK constraint validates existing rows, which all hold one of the older reasons.

ALTER TABLE debug_sessions DROP CONSTRAINT debug_sessions_end_reason_check;
ALTER TABLE debug_sessions ADD CONSTRAINT debug_sessions_end_reason_check
    CHECK (end_reason IN ('client_closed', 'session_expired', 'server_shutdown', 'error', 'poll',
                          'access_revoked'));
