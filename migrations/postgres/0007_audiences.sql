-- Audiences (collector/src/segments/): named rules over segmentation profiles
-- (assent_segmentation::rules), set through the admin API and evaluated against a
-- profile when asked. A rule names no one: this is not subject data.
CREATE TABLE audiences (
    name          TEXT PRIMARY KEY,
    rule          TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
