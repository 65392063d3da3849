-- The feed (collector/src/feed/): every committed event, consent record and erasure has a
-- position, and readers follow them in that order without ever skipping a committed one.
--
-- On PostgreSQL, replicas and writer tasks commit at once, and a sequence number taken
-- early can commit after a larger one: a reader that kept "the largest number seen"
-- would skip the slower transaction's rows. So a position is (feed_tx, seq): the id of
-- the transaction that wrote the row, then a number from one sequence. Readers only read
-- rows of transactions older than the oldest one still running
-- (pg_snapshot_xmin(pg_current_snapshot())): every such transaction has ended, so no row
-- can ever appear below what a reader has passed.
CREATE SEQUENCE feed_seq;

ALTER TABLE events ADD COLUMN seq BIGINT;
ALTER TABLE events ADD COLUMN feed_tx BIGINT;
-- Events stored before the feed existed: transaction 0, in the order they were received.
UPDATE events SET feed_tx = 0, seq = o.n
FROM (SELECT source_id, message_id,
             row_number() OVER (ORDER BY received_at_ms, source_id, message_id) AS n
      FROM events) o
WHERE events.source_id = o.source_id AND events.message_id = o.message_id;
SELECT setval('feed_seq', COALESCE((SELECT MAX(seq) FROM events), 0) + 1, false);
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('feed_seq');
ALTER TABLE events ALTER COLUMN seq SET NOT NULL;
ALTER TABLE events ALTER COLUMN feed_tx SET DEFAULT (pg_current_xact_id()::text::bigint);
ALTER TABLE events ALTER COLUMN feed_tx SET NOT NULL;
CREATE INDEX events_feed ON events (feed_tx, seq);

ALTER TABLE consent_records ADD COLUMN feed_seq BIGINT;
ALTER TABLE consent_records ADD COLUMN feed_tx BIGINT;
UPDATE consent_records SET feed_tx = 0, feed_seq = nextval('feed_seq');
ALTER TABLE consent_records ALTER COLUMN feed_seq SET DEFAULT nextval('feed_seq');
ALTER TABLE consent_records ALTER COLUMN feed_tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX consent_records_feed ON consent_records (feed_tx, feed_seq);

-- An erasure, told to the feed's consumers so they delete what they derived from the
-- subject. It names the subject by pseudonym (one line per key the subject may be stored
-- under), which is why it is subject data: access shows it, retention removes it after
-- `erasure_notice_retention_days` (storage/subject_data.rs).
CREATE TABLE erasure_notices (
    seq            BIGINT DEFAULT nextval('feed_seq'),
    feed_tx        BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    subject        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX erasure_notices_seq ON erasure_notices (feed_tx, seq);
CREATE INDEX erasure_notices_subject ON erasure_notices (subject);

-- Each consumer's place in the feed, written in the same transaction as its own effects.
CREATE TABLE feed_consumers (
    name          TEXT PRIMARY KEY,
    position_tx   BIGINT NOT NULL,
    position_seq  BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
