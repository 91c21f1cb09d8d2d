-- Fleet rollouts (workflows/rollout.py) compare a wave's installs on the new version since their
-- upgrade with the same installs on the old version just before it (registry/read_rollout.py): one
-- range scan per install on (extension_name, install_id, at). The existing indexes lead with tenant_id,
-- which a rollout spanning tenants cannot use. Forward-only; not CONCURRENTLY (migrations run in a
-- transaction, see 0003 for what that means for the gateway's COPYs).
CREATE INDEX execution_log_extension_install_at ON execution_log (extension_name, install_id, at);
