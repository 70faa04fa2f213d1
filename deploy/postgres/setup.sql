-- keyward's database and its two roles, least privilege:
--   keyward_owner owns the schema and runs `keyward migrate` (DDL);
--   keyward_app is what the servers log in as: it reads and writes rows,
--   and cannot create, alter or drop tables.
-- Run once as a superuser, with the two passwords as psql variables:
--   sudo -u postgres psql -v owner_password=… -v app_password=… \
--        -f deploy/postgres/setup.sql
-- (-v database=…, -v owner=… and -v app=… choose other names). After
-- every `keyward migrate`, run after-migrate.sql as the owner.

\set ON_ERROR_STOP on
\if :{?database} \else \set database keyward \endif
\if :{?owner} \else \set owner keyward_owner \endif
\if :{?app} \else \set app keyward_app \endif

CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"database" OWNER :"owner";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app";

\connect :"database"
-- Only the owner creates objects; the app role may use them.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";
-- What migrations create from now on (run as the owner: objects another
-- role creates get no grants) is readable and writable by the app role,
-- tables and their id sequences, never droppable by it; after-migrate.sql
-- then takes back what the app never needs.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
