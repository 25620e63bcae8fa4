-- The other identifiers an activity entry concerns, folded like `name_folded`: the Duo
-- username and email of the user an entry is about, and each member of a membership change
-- (source id, target id, userName, username, email). `scimsync activity --user X` and the web
-- view's person history find an entry by any of them. Deleted with their entry.
CREATE TABLE activity_subjects (
    activity_id BIGINT NOT NULL REFERENCES activity (id) ON DELETE CASCADE,
    subject     TEXT   NOT NULL
);
CREATE INDEX activity_subjects_subject ON activity_subjects (subject, activity_id);
CREATE INDEX activity_subjects_activity ON activity_subjects (activity_id);
