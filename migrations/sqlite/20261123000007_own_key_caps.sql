-- Daily caps a user sets on their own key (NULL: no cap), and what their
-- own key has used or holds in reservations per UTC day, so the caps can be
-- enforced atomically like the platform's limits.

ALTER TABLE users ADD COLUMN own_key_tokens_per_day INTEGER;
ALTER TABLE users ADD COLUMN own_key_micro_usd_per_day INTEGER;

CREATE TABLE own_key_usage_daily (
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day            TEXT    NOT NULL,
    tokens         INTEGER NOT NULL DEFAULT 0,
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);

-- Today's use so far, so caps set during the day count what came before.
INSERT INTO own_key_usage_daily (user_id, day, tokens, cost_micro_usd)
SELECT user_id, day, tokens, cost_micro_usd FROM rollup_daily_users WHERE key_source = 'user';
