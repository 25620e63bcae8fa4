-- Searches of one connection's newest entries (`scimsync activity --connection X --limit N`,
-- `--follow`) walk this index backwards instead of sorting the connection's whole log
-- (measured on 200k entries; figures in crates/store/README.md).
CREATE INDEX activity_connection_id ON activity (connection, id);
