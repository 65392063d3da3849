-- Duplicate profiles (collector/src/segments/duplicates.rs): pairs of profiles at a
-- source whose identify traits (name, email, phone, address) match closely, proposed by
-- a scan; confirming one merges `previous_id`'s profile into `subject`'s through the
-- identity graph, rejecting one keeps it from being proposed again. Subject data:
-- access shows them, erasure and a withdrawal of personalization delete them, retention
-- removes them with the profiles (storage/subject_data.rs).
CREATE TABLE duplicate_proposals (
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    previous_id    TEXT NOT NULL,
    score          TEXT NOT NULL,
    status         TEXT NOT NULL,
    decided_at_ms  BIGINT,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_id, subject, previous_id)
);
CREATE INDEX duplicate_proposals_previous ON duplicate_proposals (previous_id);
