-- The client session a gateway call belongs to (Claude Code sends
-- `x-claude-code-session-id` with each call), so a user sees what each
-- session cost, and the agent within it (`x-claude-code-agent-id`, one per
-- subagent). NULL for chat turns and clients that send none.
ALTER TABLE usage_ledger ADD COLUMN client_session TEXT;
ALTER TABLE usage_ledger ADD COLUMN client_agent TEXT;
CREATE INDEX usage_ledger_by_session ON usage_ledger (user_id, client_session)
    WHERE client_session IS NOT NULL;
