-- The call lifecycle: reservations that can be found again after a crash,
-- a per-minute window at a fixed cost per call, calls that never reached
-- Anthropic told apart in the ledger, per-use server-tool fees, and plans
-- that may or may not use server tools.

-- One row per reservation not yet settled. A crashed process leaves its
-- rows behind: the next start under the same instance name releases them
-- at once, any instance releases them once `expires_at` has passed (live
-- instances push their own rows' expiry forward while calls run).
CREATE TABLE reservations (
    -- Chosen at random by whoever takes the reservation (no round trip to
    -- learn an id when many are written in one statement).
    id             INTEGER PRIMARY KEY,
    -- 'platform' (plan limits, usage_daily) or 'own_key' (the user's caps).
    kind           TEXT    NOT NULL CHECK (kind IN ('platform', 'own_key')),
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day            TEXT    NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    -- The per-minute bucket the call was counted in (platform calls).
    rate_bucket    INTEGER,
    instance       TEXT    NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX reservations_by_expiry ON reservations (expires_at);
CREATE INDEX reservations_by_instance ON reservations (instance);

-- The rolling per-minute window, as calls per user and 100 ms bucket: a
-- check reads at most 601 rows however many calls the window holds (the
-- per-call events it replaces grew with the rate). A bucket counts while
-- any part of it is inside the window, so a call may be refused up to
-- 100 ms longer than an exact log would refuse it, never admitted sooner.
CREATE TABLE rate_buckets (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Start of the bucket, unix milliseconds, a multiple of 100.
    bucket  INTEGER NOT NULL,
    calls   INTEGER NOT NULL,
    PRIMARY KEY (user_id, bucket)
);
DROP TABLE rate_events;

-- 0 for a call that never left keyward (DNS, connect or TLS failure): it
-- is in the ledger but counts against no limit.
ALTER TABLE usage_ledger ADD COLUMN reached_upstream INTEGER NOT NULL DEFAULT 1;
-- Anthropic server-tool uses billed per use (web searches).
ALTER TABLE usage_ledger ADD COLUMN server_tool_uses INTEGER NOT NULL DEFAULT 0;

-- Whether calls on the platform key may use Anthropic's server tools
-- (web search, web fetch, code execution, MCP servers). Off for every
-- existing plan, `free` included.
ALTER TABLE plans ADD COLUMN allows_server_tools INTEGER NOT NULL DEFAULT 0;
