-- System prompts: a user's default, and a conversation's own (which wins).
-- NULL means none.
ALTER TABLE users ADD COLUMN system_prompt TEXT;
ALTER TABLE conversations ADD COLUMN system_prompt TEXT;
