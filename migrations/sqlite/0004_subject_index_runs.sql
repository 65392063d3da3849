-- The subject index side table becomes a list of runs. Each bulk merge used to add its
-- entries among all the earlier ones: with every subject's entries in their own place,
-- a merge touched one page per subject, and took longer as the table grew (15 ms, then
-- 30 ms after half a million events, blocking the writer each time). Now a merge writes
-- its sorted entries as a new run, keyed (run, subject_key, seq) with a run number that
-- only grows, so it appends at the end of the table: its cost follows its own size.
-- Lookups seek each run (collector/src/subject_index.rs).
DROP TRIGGER events_leave_subject_index;
CREATE TABLE event_subjects_v2 (
    run         BIGINT NOT NULL,
    subject_key BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (run, subject_key, seq)
) WITHOUT ROWID;
CREATE TABLE event_subject_runs (
    run BIGINT PRIMARY KEY
);
-- What was indexed so far becomes the first run.
INSERT INTO event_subjects_v2 (run, subject_key, seq)
SELECT 0, subject_key, seq FROM event_subjects ORDER BY subject_key, seq;
INSERT INTO event_subject_runs (run) SELECT 0 WHERE EXISTS (SELECT 1 FROM event_subjects_v2);
DROP TABLE event_subjects;
ALTER TABLE event_subjects_v2 RENAME TO event_subjects;
-- An event deleted (retention, erasure) takes its entry with it.
CREATE INDEX event_subjects_seq ON event_subjects (seq);
CREATE TRIGGER events_leave_subject_index AFTER DELETE ON events
BEGIN DELETE FROM event_subjects WHERE seq = OLD.seq; END;
