-- scimsync store, version 6: the last known state of each linked target object, so a normal
-- run reads only the objects whose desired state changed. Never edit this file once merged.
--
-- One row per linked user or group of a connection: `state` is the compact serde_json text of
-- the core's TargetUser or TargetGroup (as a read found it, or as an accepted write left it);
-- `doubtful` is true when a write's outcome was unknown, and the next run reads the object.
-- A full run replaces a connection's rows in one transaction. The catalogue read with it and
-- the time of the last full read are kept in `target_facts`.
CREATE TABLE target_state (
    connection TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('user', 'group')),
    target_id  TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    doubtful   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (connection, kind, target_id)
);

-- How each run read the target: 'incremental', or 'full (why)'; NULL for runs that ended
-- before reading it and for runs recorded before this version.
ALTER TABLE runs ADD COLUMN read TEXT;
