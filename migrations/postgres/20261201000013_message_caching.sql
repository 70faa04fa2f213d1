-- What prompt caching did for each reply: tokens read from the cache, and
-- what that saved against paying for them as plain input (negative on a
-- turn that only wrote to the cache).
ALTER TABLE messages ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN saved_micro_usd BIGINT NOT NULL DEFAULT 0;
