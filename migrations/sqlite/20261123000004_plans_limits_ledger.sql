-- Plans, the reservations that enforce their limits, and the usage ledger.

CREATE TABLE plans (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    -- NULL means unlimited.
    requests_per_minute INTEGER,
    requests_per_day    INTEGER,
    tokens_per_day      INTEGER,
    models              TEXT    NOT NULL,
    max_tokens          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);

ALTER TABLE users ADD COLUMN plan_id INTEGER REFERENCES plans (id);

-- Per user and UTC day: requests and tokens reserved or used on the platform key.
CREATE TABLE usage_daily (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day      TEXT    NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    tokens   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

-- One row per platform-key call, for the rolling per-minute window.
CREATE TABLE rate_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL
);
CREATE INDEX rate_events_by_user ON rate_events (user_id, at);

-- Exactly one row per upstream call.
CREATE TABLE usage_ledger (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    at                    INTEGER NOT NULL,
    user_id               INTEGER NOT NULL,
    conversation_id       INTEGER,
    message_id            INTEGER,
    token_id              INTEGER,
    key_source            TEXT    NOT NULL CHECK (key_source IN ('platform', 'user')),
    model                 TEXT    NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cost_micro_usd        INTEGER NOT NULL,
    status                TEXT    NOT NULL,
    error_type            TEXT,
    latency_ms            INTEGER NOT NULL,
    ttft_ms               INTEGER,
    request_id            TEXT
);
CREATE INDEX usage_ledger_by_time ON usage_ledger (at);
CREATE INDEX usage_ledger_by_user ON usage_ledger (user_id, at);
