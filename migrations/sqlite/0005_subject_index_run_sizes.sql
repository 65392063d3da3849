-- Runs of the subject index remember how many entries they were written with, so that an
-- idle collector can fold small runs into larger ones: lookups seek every run, and one run
-- per 10,000 events made that thousands of seeks for tens of millions of events
-- (collector/src/subject_index.rs). Retention deletes entries without updating the count,
-- so it is an upper bound.
ALTER TABLE event_subject_runs ADD COLUMN entries BIGINT NOT NULL DEFAULT 0;
UPDATE event_subject_runs
SET entries = (SELECT COUNT(*) FROM event_subjects s WHERE s.run = event_subject_runs.run);
