-- Each call's ledger row carries a random id chosen when the call ended. A
-- batch retried after its commit was lost in transit (the database took it,
-- the answer never came back) looks its ids up and skips what is already
-- in. Not unique: two calls drawing the same 63-bit id must not make a
-- write fail; only a retry consults it.
ALTER TABLE usage_ledger ADD COLUMN call_id BIGINT;
CREATE INDEX usage_ledger_by_call ON usage_ledger (call_id) WHERE call_id IS NOT NULL;
