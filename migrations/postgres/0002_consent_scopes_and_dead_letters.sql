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
-- of its own scope), never sent from a browser.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('write', 'admin', 'server'));
