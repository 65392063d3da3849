-- The feed (collector/src/feed/): every committed event, consent record and erasure has a
-- position, and readers follow them in that order. SQLite has one writer at a time, so a
-- number taken under the write lock follows the order of commits; it only has to be
-- taken from one counter and never given twice.
--
-- Events keep their `seq` as their position, now AUTOINCREMENT: without it SQLite gives a
-- new row the largest seq + 1, so after erasure or retention removed the newest rows a
-- number a reader had passed could be given again, and the reader would skip that row.
-- AUTOINCREMENT keeps the largest number ever given in sqlite_sequence, read and written
-- once per INSERT statement (a statement carries up to 100 events). Consent records and
-- erasure notices take their positions from the same counter (the triggers below):
-- SQLite's next AUTOINCREMENT number is above both the table's rows and that counter.
CREATE TABLE events_v3 (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
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
DROP TRIGGER events_leave_subject_index;
INSERT INTO events_v3 SELECT seq, source_id, message_id, type, name, purpose, subject,
    subject_key, anonymous_id, user_id, timestamp_ms, original_timestamp_ms, sent_at_ms,
    received_at_ms, ip_prefix, payload FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_received ON events (received_at_ms);
CREATE TRIGGER events_leave_subject_index AFTER DELETE ON events
BEGIN DELETE FROM event_subjects WHERE seq = OLD.seq; END;
-- The counter's line, also for a database without events yet.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events', COALESCE((SELECT MAX(seq) FROM events), 0)
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');

-- Consent records: positioned when inserted. Records stored before the feed existed are
-- placed after every event stored so far, in the order they were recorded.
ALTER TABLE consent_records ADD COLUMN feed_seq BIGINT;
UPDATE consent_records SET feed_seq = (SELECT seq FROM sqlite_sequence WHERE name = 'events')
    + (SELECT COUNT(*) FROM consent_records c WHERE c.rowid <= consent_records.rowid);
UPDATE sqlite_sequence SET seq = seq + (SELECT COUNT(*) FROM consent_records) WHERE name = 'events';
CREATE INDEX consent_records_feed ON consent_records (feed_seq);
CREATE TRIGGER consent_records_feed_position AFTER INSERT ON consent_records
BEGIN
    UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'events';
    UPDATE consent_records SET feed_seq = (SELECT seq FROM sqlite_sequence WHERE name = 'events')
    WHERE rowid = NEW.rowid;
END;
-- Setting the position is no change of consent: the consent cache's line for an update
-- (sqlite/0003) now follows the columns that are one.
DROP TRIGGER consent_changes_on_update;
CREATE TRIGGER consent_changes_on_update
AFTER UPDATE OF source_id, subject, purposes, timestamp_ms ON consent_records
BEGIN
    INSERT INTO consent_changes (bucket) VALUES (substr(OLD.subject, -4));
    INSERT INTO consent_changes (bucket) VALUES (substr(NEW.subject, -4));
END;

-- An erasure, told to the feed's consumers so they delete what they derived from the
-- subject. It names the subject by pseudonym (one line per key the subject may be stored
-- under), which is why it is subject data: access shows it, retention removes it after
-- `erasure_notice_retention_days` (storage/subject_data.rs).
CREATE TABLE erasure_notices (
    seq            BIGINT,
    subject        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX erasure_notices_seq ON erasure_notices (seq);
CREATE INDEX erasure_notices_subject ON erasure_notices (subject);
CREATE TRIGGER erasure_notices_feed_position AFTER INSERT ON erasure_notices
BEGIN
    UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'events';
    UPDATE erasure_notices SET seq = (SELECT seq FROM sqlite_sequence WHERE name = 'events')
    WHERE rowid = NEW.rowid;
END;

-- Each consumer's place in the feed, written in the same transaction as its own effects.
-- A position is (transaction, seq): PostgreSQL orders by both (feed/mod.rs), SQLite's
-- transaction part is always 0.
CREATE TABLE feed_consumers (
    name          TEXT PRIMARY KEY,
    position_tx   BIGINT NOT NULL,
    position_seq  BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
