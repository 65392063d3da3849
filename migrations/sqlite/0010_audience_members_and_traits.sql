-- Audience membership (collector/src/segments/): who is in each audience at each source,
-- since when, kept by the segmentation consumer as events arrive (and by the backfill
-- when an audience is set, and by the sweep that lets time-window rules lapse). Subject
-- data: access shows them, erasure and a withdrawal of personalization delete them,
-- retention removes them with the profiles (storage/subject_data.rs).
CREATE TABLE audience_members (
    audience       TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    since_ms       BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (audience, source_id, subject)
);
CREATE INDEX audience_members_subject ON audience_members (subject);

-- Every entry into and exit from an audience, with its time: listable per audience.
-- Subject data, as above.
CREATE TABLE audience_changes (
    audience       TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    entered        BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (audience, source_id, at_ms, subject, entered)
);
CREATE INDEX audience_changes_subject ON audience_changes (subject);
CREATE INDEX audience_changes_received ON audience_changes (received_at_ms);

-- Computed traits (assent_segmentation::profile::ComputedTrait as JSON), set through the
-- admin API and evaluated over each profile. A definition names no one: not subject data.
CREATE TABLE computed_traits (
    name          TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
