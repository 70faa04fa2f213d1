-- A conversation's extended-thinking setting (its budget in tokens; NULL
-- = off), so the toggle is per conversation: the last turn's choice.
ALTER TABLE conversations ADD COLUMN thinking_budget BIGINT;
