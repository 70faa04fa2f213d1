-- The call lifecycle: reservations that can be found again after a crash,
-- calls that never reached Anthropic told apart in the ledger, per-use
-- server-tool fees, and plans that may or may not use server tools.

-- One row per reservation not yet settled. A crashed process leaves its
-- rows behind: the next start under the same instance name releases them
-- at once, any instance releases them once `expires_at` has passed (live
-- instances push their own rows' expiry forward while calls run).
CREATE TABLE reservations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'platform' (plan limits, usage_daily) or 'own_key' (the user's caps).
    kind           TEXT    NOT NULL CHECK (kind IN ('platform', 'own_key')),
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day            TEXT    NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_micro_usd INTEGER NOT NULL DEFAULT 0,
    rate_event_id  INTEGER,
    instance       TEXT    NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX reservations_by_expiry ON reservations (expires_at);
CREATE INDEX reservations_by_instance ON reservations (instance);

-- 0 for a call that never left keyward (DNS, connect or TLS failure): it
-- is in the ledger but counts against no limit.
ALTER TABLE usage_ledger ADD COLUMN reached_upstream INTEGER NOT NULL DEFAULT 1;
-- Anthropic server-tool uses billed per use (web searches).
ALTER TABLE usage_ledger ADD COLUMN server_tool_uses INTEGER NOT NULL DEFAULT 0;

-- Whether calls on the platform key may use Anthropic's server tools
-- (web search, web fetch, code execution, MCP servers). Off for every
-- existing plan, `free` included.
ALTER TABLE plans ADD COLUMN allows_server_tools INTEGER NOT NULL DEFAULT 0;
