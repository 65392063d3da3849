-- Segmentation's profiles (collector/src/segments/): one per source and pseudonymous
-- subject who granted `personalization` there, holding the events folded into it as JSON
-- (assent_segmentation::profile::Profile). Subject data: access shows them, erasure and a
-- withdrawal of personalization delete them, retention removes those not updated for
-- `event_retention_days` (storage/subject_data.rs).
CREATE TABLE profiles (
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    events         TEXT NOT NULL,
    -- When the last event was folded in; retention counts from it.
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_id, subject)
);
CREATE INDEX profiles_subject ON profiles (subject);
CREATE INDEX profiles_received ON profiles (received_at_ms);
