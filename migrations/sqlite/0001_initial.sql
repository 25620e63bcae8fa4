-- scimsync store, SQLite dialect, version 1: runs, the activity log, links and leases.
-- Never edit this file once merged: add a new numbered migration instead.
-- Timestamps are milliseconds since the Unix epoch (UTC) in BIGINT columns.

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection   TEXT    NOT NULL,
    triggered_by TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    source_users BIGINT,
    planned      BIGINT  NOT NULL DEFAULT 0,
    applied      BIGINT  NOT NULL DEFAULT 0,
    failed       BIGINT  NOT NULL DEFAULT 0,
    rejected     BIGINT  NOT NULL DEFAULT 0,
    skipped      BIGINT  NOT NULL DEFAULT 0,
    message      TEXT
);
CREATE INDEX runs_connection_started ON runs (connection, started_at);
CREATE INDEX runs_started ON runs (started_at);

-- Append-only. `name_folded` is `name` lower-cased by the store, so the `user` filter matches
-- names case-insensitively through a plain index, identically on both dialects.
CREATE TABLE activity (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      BIGINT  NOT NULL REFERENCES runs (id),
    connection  TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    op          TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'rejected', 'skipped')),
    object      TEXT    NOT NULL,
    source_id   TEXT,
    target_id   TEXT,
    name        TEXT    NOT NULL,
    name_folded TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
CREATE INDEX activity_connection_at ON activity (connection, at);
CREATE INDEX activity_run_id ON activity (run_id);
CREATE INDEX activity_name_folded ON activity (name_folded);
CREATE INDEX activity_source_id ON activity (source_id);
CREATE INDEX activity_target_id ON activity (target_id);
CREATE INDEX activity_op ON activity (op, id);
CREATE INDEX activity_outcome ON activity (outcome, id);

-- The JSON columns hold serde_json text of the core types (a set of names, a PendingEmail,
-- a list of Refusal).
CREATE TABLE user_links (
    connection               TEXT NOT NULL,
    source_id                TEXT NOT NULL,
    target_id                TEXT NOT NULL,
    origin                   TEXT NOT NULL CHECK (origin IN ('created', 'adopted')),
    assigned_permission_sets TEXT NOT NULL DEFAULT '[]',
    pending_email            TEXT,
    refusals                 TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (connection, source_id),
    UNIQUE (connection, target_id)
);

CREATE TABLE group_links (
    connection TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    target_id  TEXT NOT NULL,
    origin     TEXT NOT NULL CHECK (origin IN ('created', 'adopted')),
    PRIMARY KEY (connection, source_id),
    UNIQUE (connection, target_id)
);

-- One row per connection that has ever been leased; a lease is held while expires_at is in
-- the future (by the clock of the daemon that asks).
CREATE TABLE leases (
    connection  TEXT   PRIMARY KEY,
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
