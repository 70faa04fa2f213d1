-- Users' own Anthropic keys, sealed with AES-256-GCM (see src/server/vault).
-- Only ciphertext, nonce and the id of the master key that wrote them are stored,
-- plus the last four characters for display.
CREATE TABLE user_api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      TEXT    NOT NULL,
    ciphertext    BLOB    NOT NULL,
    nonce         BLOB    NOT NULL,
    master_key_id TEXT    NOT NULL,
    last4         TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    rejected_at   INTEGER,
    UNIQUE (user_id, provider)
);
CREATE INDEX user_api_keys_by_master_key ON user_api_keys (master_key_id, id);
