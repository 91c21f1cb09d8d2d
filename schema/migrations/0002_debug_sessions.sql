-- Debug stream viewing sessions (api/gateway/debug_sessions.py writes them, GET /v1/debug-sessions
-- lists them). Forward-only, like 0001.
--
-- Telemetry like execution_log, not registry state: the gateway records who watched which tenant's
-- extension, when, with which filters, how many events it was sent and how the session ended. No
-- workflow is involved (a viewing session changes nothing), so the gateway writes these rows itself.
-- ended_at NULL on an old row means the gateway process died mid-session.

CREATE TABLE debug_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    principal       text NOT NULL,                 -- "token:<id>" or "admin" (the bootstrap token)
    token_id        uuid,                          -- api_tokens.id when the caller used a token row
    operator        boolean NOT NULL DEFAULT false,-- a global admin token acting for the tenant
    tenant_id       text NOT NULL,                 -- always the caller's tenant (from the token)
    extension_name  text NOT NULL,
    install_id      uuid,
    filters         jsonb NOT NULL DEFAULT '{}'::jsonb,
    transport       text NOT NULL CHECK (transport IN ('sse', 'poll')),
    request_id      text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    events_sent     integer NOT NULL DEFAULT 0,
    end_reason      text CHECK (end_reason IN ('client_closed', 'session_expired', 'server_shutdown',
                                               'error', 'poll'))
);
CREATE INDEX debug_sessions_tenant_started ON debug_sessions (tenant_id, started_at DESC);
CREATE INDEX debug_sessions_extension_started ON debug_sessions (extension_name, started_at DESC);
