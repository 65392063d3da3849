-- Segmentation's profiles (collector/src/segments/): the events folded into the profile of
-- each source and pseudonymous subject who granted `personalization` there, one row per
-- event (assent_segmentation::profile::Event as JSON). Keyed by time and message id, so
-- folding an event is an insert that skips one already there: redelivered items change
-- nothing, and items in any order give the same rows. Subject data: access shows them,
-- erasure and a withdrawal of personalization delete them, retention removes them after
-- `event_retention_days` (storage/subject_data.rs).
CREATE TABLE profile_events (
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    message_id     TEXT NOT NULL,
    event          TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_id, subject, at_ms, message_id)
);
CREATE INDEX profile_events_subject ON profile_events (subject);
CREATE INDEX profile_events_received ON profile_events (received_at_ms);
