-- Personal tokens for the Anthropic-compatible gateway. Only the SHA-256 of
-- a token is stored; the token itself is shown once when it is created.

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    -- The first characters of the token, so people can tell tokens apart.
    prefix       TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
-- A name is unique among a user's live tokens.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (user_id, name) WHERE revoked_at IS NULL;

CREATE INDEX usage_ledger_by_token ON usage_ledger (token_id) WHERE token_id IS NOT NULL;

-- Opt-in: when the user's own key fails, use the free tier instead (off by default).
ALTER TABLE users ADD COLUMN fallback_to_free INTEGER NOT NULL DEFAULT 0;
