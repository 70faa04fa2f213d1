-- What prompt caching saved on each call (its cost with cached tokens
-- billed as plain input, less its cost), summed by the daily roll-ups so
-- /admin can show it beside the cost.
ALTER TABLE usage_ledger ADD COLUMN saved_micro_usd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollup_daily_models ADD COLUMN saved_micro_usd BIGINT NOT NULL DEFAULT 0;
