-- extplane registry, first migration. Forward-only: never edit a migration once it has landed; add the
-- next numbered file instead (core.migrations refuses a changed checksum).
--
-- Invariants the constraints carry:
-- * a version is immutable per (extension, version) and points at exactly one verified bundle;
-- * no version row exists without its bundle row (FK), and no install points at a revoked version
--   while active (the install workflow checks; the revoke workflow disables such installs);
-- * one install per (tenant, extension);
-- * secrets are stored only as ciphertext; tokens only as hashes.

CREATE TABLE extensions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    publisher   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trust_keys (
    key_id          text PRIMARY KEY,              -- "ed25519:" + hex(sha256(raw public key))[:32]
    publisher       text NOT NULL,                 -- the only publisher this key may sign for
    public_key_pem  text NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    revoked_reason  text,
    added_by        text NOT NULL DEFAULT 'system'
);
CREATE INDEX trust_keys_publisher ON trust_keys (publisher);

CREATE TABLE bundles (
    content_hash    text PRIMARY KEY CHECK (content_hash ~ '^sha256:[0-9a-f]{64}$'),
    size_bytes      bigint NOT NULL CHECK (size_bytes > 0),
    storage_key     text NOT NULL,
    signature       text NOT NULL,                 -- base64 Ed25519 over the canonical statement
    signer_key_id   text NOT NULL REFERENCES trust_keys (key_id),
    verified_at     timestamptz NOT NULL,
    -- engine fingerprint -> {"key": blob key, "sha256": ..., "size": ...}
    precompiled     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bundles_signer ON bundles (signer_key_id);

CREATE TABLE versions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    extension_id    uuid NOT NULL REFERENCES extensions (id),
    version         text NOT NULL,
    content_hash    text NOT NULL REFERENCES bundles (content_hash),
    manifest        jsonb NOT NULL,
    capabilities    text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'verified' CHECK (status IN ('verified', 'revoked')),
    revoked_at      timestamptz,
    publish_workflow_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (extension_id, version)
);
CREATE INDEX versions_content_hash ON versions (content_hash);

CREATE TABLE api_endpoints (
    id          bigserial PRIMARY KEY,
    version_id  uuid NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    method      text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    path        text NOT NULL,
    UNIQUE (version_id, method, path)
);

CREATE TABLE installs (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id               text NOT NULL,
    extension_id            uuid NOT NULL REFERENCES extensions (id),
    version_id              uuid NOT NULL REFERENCES versions (id),
    status                  text NOT NULL CHECK (status IN ('active', 'disabled', 'quarantined')),
    granted_capabilities    text[] NOT NULL DEFAULT '{}',
    revision                bigint NOT NULL DEFAULT 1,
    config_version          integer NOT NULL DEFAULT 0,
    secrets_version         integer NOT NULL DEFAULT 0,
    rate_limit_rps          double precision,      -- NULL: the gateway default
    rate_limit_burst        integer,
    debug_enabled           boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, extension_id)
);
CREATE INDEX installs_tenant ON installs (tenant_id);
CREATE INDEX installs_version ON installs (version_id);

-- Every version an install has pointed at, in order: rollback reads "the previous version" here.
CREATE TABLE install_history (
    id              bigserial PRIMARY KEY,
    install_id      uuid NOT NULL REFERENCES installs (id) ON DELETE CASCADE,
    revision        bigint NOT NULL,
    operation       text NOT NULL,
    from_version_id uuid REFERENCES versions (id),
    to_version_id   uuid REFERENCES versions (id),
    workflow_id     text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (install_id, revision)
);

CREATE TABLE install_config (
    install_id  uuid NOT NULL REFERENCES installs (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    config      jsonb NOT NULL,
    workflow_id text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, version)
);

-- One data key per install (AES-256-GCM), stored wrapped by a master key of the environment keyring.
CREATE TABLE install_data_keys (
    install_id          uuid PRIMARY KEY REFERENCES installs (id) ON DELETE CASCADE,
    wrapped_key         bytea NOT NULL,
    master_key_version  integer NOT NULL,
    rotated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE install_secrets (
    install_id          uuid NOT NULL REFERENCES installs (id) ON DELETE CASCADE,
    version             integer NOT NULL CHECK (version > 0),
    ciphertext          bytea NOT NULL,            -- AES-256-GCM(data key, nonce, JSON map), tag appended
    nonce               bytea NOT NULL,
    key_names           text[] NOT NULL DEFAULT '{}',
    master_key_version  integer NOT NULL,
    workflow_id         text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, version)
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash  text NOT NULL UNIQUE,              -- hex sha256 of the bearer token; the token itself is never stored
    tenant_id   text,                              -- NULL: a global (admin) token
    scopes      text[] NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);

CREATE TABLE audit_events (
    id              bigserial PRIMARY KEY,
    workflow_id     text NOT NULL,
    run_id          text NOT NULL,
    step            text NOT NULL,                 -- idempotency: one row per (workflow run, step)
    actor           text NOT NULL,
    action          text NOT NULL,
    tenant_id       text,
    extension_name  text,
    version         text,
    content_hash    text,
    before          jsonb,
    after           jsonb,
    at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, run_id, step)
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at DESC);
CREATE INDEX audit_events_extension_at ON audit_events (extension_name, at DESC);

-- One row per gateway call. Never bodies, headers or secrets.
CREATE TABLE execution_log (
    id              bigserial PRIMARY KEY,
    request_id      text NOT NULL,
    tenant_id       text NOT NULL,
    extension_name  text NOT NULL,
    version         text,
    install_id      uuid,
    method          text NOT NULL,
    endpoint        text,                          -- the matched template, e.g. /items/:id
    status          integer NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'handler_error', 'policy_denied', 'timeout',
                                                     'upstream_error', 'rate_limited', 'error')),
    duration_ms     double precision NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX execution_log_tenant_at ON execution_log (tenant_id, at DESC);

CREATE TABLE storage_records (
    install_id  uuid NOT NULL REFERENCES installs (id) ON DELETE CASCADE,
    namespace   text NOT NULL CHECK (length(namespace) BETWEEN 1 AND 128),
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 256),
    value       text NOT NULL,
    size_bytes  integer NOT NULL,
    revision    bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (install_id, namespace, key)
);
