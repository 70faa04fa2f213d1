-- Run as the owner role after every `keyward migrate`:
--   psql "postgres://keyward_owner:…@127.0.0.1/keyward" -f deploy/postgres/after-migrate.sql
-- (-v app=… if the app role has another name). keyward appends to the
-- ledger and the audit log and never changes a row of either, and only
-- reads the migration history: the app role, which a compromised server
-- would hold, may not rewrite the books or the schema's history.

\set ON_ERROR_STOP on
\if :{?app} \else \set app keyward_app \endif

REVOKE UPDATE, DELETE, TRUNCATE ON usage_ledger, audit_log FROM :"app";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _sqlx_migrations FROM :"app";
