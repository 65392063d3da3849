-- Settings changed at run time through the admin API, shared by every replica (for now:
-- `realtime_segmentation`, true or false). A setting not here takes its configured
-- value. Names no one: not subject data.
CREATE TABLE settings (
    name          TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
