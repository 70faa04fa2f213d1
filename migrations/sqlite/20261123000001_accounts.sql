-- Accounts, sessions, login throttling and the audit log.
-- Times are unix milliseconds (INTEGER) so the same queries run on SQLite and Postgres.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL,
    email_norm    TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER REFERENCES users (id) ON DELETE CASCADE,
    data       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email_norm TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX login_failures_by_email ON login_failures (email_norm, at);
CREATE INDEX login_failures_by_ip ON login_failures (ip, at);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor_user_id   INTEGER,
    subject_user_id INTEGER,
    action          TEXT    NOT NULL,
    detail          TEXT    NOT NULL DEFAULT '',
    ip              TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Append-only: the application never updates or deletes audit rows, and the database refuses it too.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
