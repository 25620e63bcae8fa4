-- The write requests the target received for an entry: first attempts and retries (0 for
-- entries that sent nothing, and for entries recorded before this column).
ALTER TABLE activity ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
