-- No query reads the ledger by token, and every gateway call's row paid
-- for this index on insert.
DROP INDEX IF EXISTS usage_ledger_by_token;
