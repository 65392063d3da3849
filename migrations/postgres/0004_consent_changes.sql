-- Every change to consent_records leaves a line here, so that each replica can keep
-- subjects' consent records in memory and drop exactly what changed, whichever replica
-- made the change (collector/src/consent/cache.rs), as SQLite does since sqlite/0003.
-- A line names a bucket, not a subject: the last four characters of the pseudonym.
--
-- Replicas commit in any order, so a line is positioned like a feed item: the writing
-- transaction, then a number. A cache reads the lines of every transaction at or above
-- the horizon it last saw (the oldest transaction then running), and remembers which of
-- those it applied; every line below was applied before.
CREATE SEQUENCE consent_change_seq;
CREATE TABLE consent_changes (
    feed_tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq     BIGINT NOT NULL DEFAULT nextval('consent_change_seq'),
    bucket  TEXT NOT NULL
);
CREATE INDEX consent_changes_position ON consent_changes (feed_tx, seq);

CREATE FUNCTION consent_changes_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO consent_changes (bucket) VALUES (right(OLD.subject, 4));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO consent_changes (bucket) VALUES (right(NEW.subject, 4));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER consent_changes_on_change
AFTER INSERT OR DELETE OR UPDATE OF source_id, subject, purposes, timestamp_ms ON consent_records
FOR EACH ROW EXECUTE FUNCTION consent_changes_note();

-- Lines are pruned below `below_tx`: a cache whose horizon is under it may have missed
-- some and starts afresh. Each prune moves `below_tx` to the horizon the previous prune
-- saw, so caches in use (a look per batch) are never that far behind.
CREATE TABLE consent_changes_pruned (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    below_tx      BIGINT NOT NULL,
    next_below_tx BIGINT NOT NULL
);
INSERT INTO consent_changes_pruned (id, below_tx, next_below_tx) VALUES (1, 0, 0);
