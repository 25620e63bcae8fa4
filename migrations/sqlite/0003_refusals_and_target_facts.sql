-- scimsync store, SQLite dialect, version 3: refusals held per object and attribute, and what
-- was learned of each connection's target. Never edit this file once merged.
--
-- Refusals used to live in `user_links.refusals` (a JSON list per user link, of a type that is
-- gone). That column stays (migrations are append-only) but is no longer read: the store
-- writes '[]' into it. The old entries cannot be carried over, as they have no fingerprint of
-- the write they refused; they are cleared here, so each such write is tried once more and, if
-- refused again, held in `refusals`.

UPDATE user_links SET refusals = '[]' WHERE refusals <> '[]';

-- One row per refused write: (object, source_id, attribute) names it; `fingerprint` says what
-- was sent and what it depended on (a different one lets the write be tried again). `value`
-- and `reason` are for people and bounded by the store (at most 1,000 characters each), so a
-- target's error body cannot bloat the database. `at` is milliseconds since the epoch (UTC).
CREATE TABLE refusals (
    connection  TEXT   NOT NULL,
    object      TEXT   NOT NULL CHECK (object IN ('user', 'group')),
    source_id   TEXT   NOT NULL,
    attribute   TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (connection, object, source_id, attribute)
);
-- Forgetting the refusals of one source object (of either kind) by connection and source id.
CREATE INDEX refusals_connection_source_id ON refusals (connection, source_id);

-- One row per connection: serde_json text of the core's TargetFacts (the last discovery, the
-- member batch size the target accepted, profiles without groups), replaced whole on each
-- save. `updated_at` is when it was saved (milliseconds since the epoch, the store's clock),
-- for people; nothing reads it.
CREATE TABLE target_facts (
    connection TEXT   PRIMARY KEY,
    facts      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
