-- Events get an explicit sequence number (a rowid that VACUUM keeps), and the index that
-- finds a subject's events moves to a side table the writer fills in bulk, sorted, every
-- few tens of thousands of rows (collector/src/subject_index.rs). Kept row by row, that
-- index was most of SQLite's work under load: its entries land all over it, so every
-- commit rewrote hundreds of its pages into the WAL. Rows not yet in it are found by
-- scanning the events after `indexed_upto`, a bounded tail.
CREATE TABLE events_v2 (
    seq                   INTEGER PRIMARY KEY,
    source_id             TEXT NOT NULL,
    message_id            TEXT NOT NULL,
    type                  TEXT NOT NULL,
    name                  TEXT,
    purpose               TEXT NOT NULL,
    subject               TEXT NOT NULL,
    subject_key           BIGINT NOT NULL,
    anonymous_id          TEXT,
    user_id               TEXT,
    timestamp_ms          BIGINT NOT NULL,
    original_timestamp_ms BIGINT,
    sent_at_ms            BIGINT,
    received_at_ms        BIGINT NOT NULL,
    ip_prefix             TEXT,
    payload               TEXT NOT NULL,
    UNIQUE (source_id, message_id)
);
INSERT INTO events_v2 (source_id, message_id, type, name, purpose, subject, subject_key,
    anonymous_id, user_id, timestamp_ms, original_timestamp_ms, sent_at_ms, received_at_ms,
    ip_prefix, payload)
SELECT source_id, message_id, type, name, purpose, subject, subject_key, anonymous_id,
    user_id, timestamp_ms, original_timestamp_ms, sent_at_ms, received_at_ms, ip_prefix,
    payload
FROM events ORDER BY received_at_ms;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_received ON events (received_at_ms);

CREATE TABLE event_subjects (
    subject_key BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (subject_key, seq)
) WITHOUT ROWID;
-- An event deleted (retention, erasure) takes its entry with it.
CREATE INDEX event_subjects_seq ON event_subjects (seq);
CREATE TRIGGER events_leave_subject_index AFTER DELETE ON events
BEGIN DELETE FROM event_subjects WHERE seq = OLD.seq; END;

CREATE TABLE subject_index_progress (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto BIGINT NOT NULL
);
INSERT INTO event_subjects (subject_key, seq) SELECT subject_key, seq FROM events;
INSERT INTO subject_index_progress (id, indexed_upto) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
