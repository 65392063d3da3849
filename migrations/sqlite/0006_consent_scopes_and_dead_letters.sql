-- Consent is given to one controller for one site. A source's consent records count for
-- that source only, unless it shares a consent notice with other sources: then the sources
-- of one `consent_group` share their records (collector/src/sources.rs).
ALTER TABLE sources ADD COLUMN consent_group TEXT;
-- Segment's `context.consent.categoryPreferences` stamps count only for sources that say
-- they trust them (a stamp is the event vouching for itself).
ALTER TABLE sources ADD COLUMN trust_consent_stamps BIGINT NOT NULL DEFAULT 0;
CREATE INDEX consent_records_source_subject ON consent_records (source_id, subject, timestamp_ms);

-- Dead letters no longer keep what was refused: the payload of an event refused for want
-- of consent is exactly the data the subject refused. They keep the code, the reason, the
-- message id and the subject's pseudonym (for access, erasure and retention).
ALTER TABLE dead_letters ADD COLUMN subject TEXT;
UPDATE dead_letters SET payload = '';
CREATE INDEX dead_letters_subject ON dead_letters (subject) WHERE subject IS NOT NULL;

-- Server keys: secret keys of a source for its back end (ingest, and reading the consent
-- of its own scope), never sent from a browser. SQLite cannot change a CHECK in place:
-- the table is made again with the same rows.
CREATE TABLE api_keys_new (
    id            TEXT PRIMARY KEY,
    source_id     TEXT REFERENCES sources(id),
    role          TEXT NOT NULL CHECK (role IN ('write', 'admin', 'server')),
    key_hash      TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
INSERT INTO api_keys_new (id, source_id, role, key_hash, label, created_at_ms, revoked_at_ms)
SELECT id, source_id, role, key_hash, label, created_at_ms, revoked_at_ms FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
