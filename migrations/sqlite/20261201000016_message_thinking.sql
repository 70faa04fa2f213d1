-- A reply's extended thinking, shown collapsed under it (billed as output,
-- like the reply).
ALTER TABLE messages ADD COLUMN thinking TEXT;
