-- Named operator tokens (docs/operator.md "Tokens"). Forward-only, like 0001-0004.
--
-- identity is the Actor a token's changes are recorded under (audit_events.actor and the Actor search
-- attribute): "<name>" for a global token, "<tenant>/<name>" for a tenant token. The operator API
-- derives it from the token's name at creation (CreateToken workflow); rows written before this
-- migration have NULL and show as "token:<id>" (their free-text names are labels, possibly repeated,
-- so they are not promoted). Adding a nullable column rewrites no rows.
--
-- One live identity per name: among tokens not revoked, no two carry the same identity, so an Actor
-- names one token at a time. Revoking a token frees its name for a successor (a rotated key of the
-- same operator). Revocation is one-way: nothing in the API clears revoked_at.

ALTER TABLE api_tokens ADD COLUMN identity text;

CREATE UNIQUE INDEX api_tokens_live_identity ON api_tokens (identity)
    WHERE revoked_at IS NULL AND identity IS NOT NULL;
