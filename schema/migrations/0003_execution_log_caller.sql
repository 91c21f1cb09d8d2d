-- Who made each call in execution_log and what its guest cost (api/gateway/execlog.py writes them,
-- GET /v1/tenants/{tenant}/executions lists them). Forward-only, like 0001 and 0002.
--
-- principal and operator have the meaning they have in debug_sessions: a tenant token ("token:<id>",
-- operator false) or a global admin token acting for the tenant through x-extplane-tenant ("admin" for
-- the bootstrap token, or "token:<id>" of a global api_tokens row; operator true). Rows written before
-- this migration have principal NULL. fuel_consumed is what the runner reported for the guest; NULL
-- when no guest ran (refused by policy or the rate limit, runner unreachable, busy or failing before
-- instantiation). Adding nullable / constant-default columns rewrites no rows.

ALTER TABLE execution_log
    ADD COLUMN principal     text,                            -- "token:<id>" or "admin"
    ADD COLUMN operator      boolean NOT NULL DEFAULT false,  -- a global admin token acting for the tenant
    ADD COLUMN fuel_consumed bigint;                          -- NULL when no guest ran

-- The operator listing of one tenant's calls to one extension, newest first (keyset by (at, id)).
-- Not CONCURRENTLY: migrations run in a transaction. On a large execution_log the build blocks the
-- gateway's COPYs meanwhile; its rows wait in the bounded queue and past it are dropped and counted
-- (gateway_execlog_dropped_total), tenant calls are not slowed.
CREATE INDEX execution_log_tenant_extension_at ON execution_log (tenant_id, extension_name, at DESC);
