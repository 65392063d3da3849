-- Every change to consent_records leaves a line here, so that a collector process can keep
-- subjects' consent records in memory and drop exactly what changed, whichever process
-- made the change (collector/src/consent_cache.rs). SQLite has one writer at a time, so
-- `seq` follows the order of commits.
--
-- A line names a bucket, not a subject: the last four characters of the subject's
-- pseudonym (16 bits of an HMAC). That tells the cache what to drop while saying nothing
-- about who the subject is, so erasure has nothing to remove here.
CREATE TABLE consent_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL
);
CREATE TRIGGER consent_changes_on_insert AFTER INSERT ON consent_records
BEGIN INSERT INTO consent_changes (bucket) VALUES (substr(NEW.subject, -4)); END;
CREATE TRIGGER consent_changes_on_update AFTER UPDATE ON consent_records
BEGIN
    INSERT INTO consent_changes (bucket) VALUES (substr(OLD.subject, -4));
    INSERT INTO consent_changes (bucket) VALUES (substr(NEW.subject, -4));
END;
CREATE TRIGGER consent_changes_on_delete AFTER DELETE ON consent_records
BEGIN INSERT INTO consent_changes (bucket) VALUES (substr(OLD.subject, -4)); END;
-- The starting line: caches begin after it.
INSERT INTO consent_changes (bucket) VALUES ('');
