-- Daily roll-ups of the ledger, kept up to date in the same transaction as
-- each ledger row, so the admin dashboard sums days instead of calls.

CREATE TABLE rollup_daily_models (
    day                   TEXT    NOT NULL,
    key_source            TEXT    NOT NULL,
    model                 TEXT    NOT NULL,
    requests              INTEGER NOT NULL,
    errors                INTEGER NOT NULL,
    input_tokens          INTEGER NOT NULL,
    output_tokens         INTEGER NOT NULL,
    cache_creation_tokens INTEGER NOT NULL,
    cache_read_tokens     INTEGER NOT NULL,
    cost_micro_usd        INTEGER NOT NULL,
    PRIMARY KEY (day, key_source, model)
);

CREATE TABLE rollup_daily_users (
    day            TEXT    NOT NULL,
    user_id        INTEGER NOT NULL,
    key_source     TEXT    NOT NULL,
    requests       INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL,
    last_at        INTEGER NOT NULL,
    PRIMARY KEY (day, user_id, key_source)
);
CREATE INDEX rollup_daily_users_by_user ON rollup_daily_users (user_id, day);

-- Calls per day and latency bucket, for percentiles without reading the
-- ledger. Buckets are 10 ms wide below 100 ms, 50 ms below 1 s, 250 ms below
-- 10 s, 5 s below 2 min, then one bucket (see db::rollups::latency_bucket).
CREATE TABLE rollup_daily_latency (
    day       TEXT    NOT NULL,
    bucket_ms INTEGER NOT NULL,
    calls     INTEGER NOT NULL,
    PRIMARY KEY (day, bucket_ms)
);
CREATE INDEX audit_log_by_action ON audit_log (action, at);

-- Calls recorded before the roll-ups existed.
INSERT INTO rollup_daily_models
SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch'), key_source, model, COUNT(*),
       SUM(CASE WHEN status IN ('200', 'stopped') THEN 0 ELSE 1 END),
       SUM(input_tokens), SUM(output_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens), SUM(cost_micro_usd)
FROM usage_ledger GROUP BY 1, 2, 3;

INSERT INTO rollup_daily_users
SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch'), user_id, key_source, COUNT(*),
       SUM(CASE WHEN status IN ('200', 'stopped') THEN 0 ELSE 1 END),
       SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), SUM(cost_micro_usd), MAX(at)
FROM usage_ledger GROUP BY 1, 2, 3;

INSERT INTO rollup_daily_latency
SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch'), CASE WHEN latency_ms < 100 THEN latency_ms / 10 * 10 WHEN latency_ms < 1000 THEN latency_ms / 50 * 50 WHEN latency_ms < 10000 THEN latency_ms / 250 * 250 WHEN latency_ms < 120000 THEN latency_ms / 5000 * 5000 ELSE 120000 END, COUNT(*)
FROM usage_ledger GROUP BY 1, 2;
