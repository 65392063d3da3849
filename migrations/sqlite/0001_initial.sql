-- Assent collector schema v1 (SQLite). Times are Unix milliseconds. Every identifier
-- column holds a pseudonym ("<key id>.<hex HMAC-SHA256>"), never a raw id.

CREATE TABLE sources (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    allowed_origins TEXT NOT NULL DEFAULT '',
    created_at_ms   BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    source_id     TEXT REFERENCES sources(id),
    role          TEXT NOT NULL CHECK (role IN ('write', 'admin')),
    key_hash      TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE server_secrets (
    name          TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE events (
    source_id             TEXT NOT NULL,
    message_id            TEXT NOT NULL,
    type                  TEXT NOT NULL,
    name                  TEXT,
    purpose               TEXT NOT NULL,
    subject               TEXT NOT NULL,
    -- The first 64 bits of the subject's pseudonym: a small, cheap key to index.
    subject_key           BIGINT NOT NULL,
    anonymous_id          TEXT,
    user_id               TEXT,
    timestamp_ms          BIGINT NOT NULL,
    original_timestamp_ms BIGINT,
    sent_at_ms            BIGINT,
    received_at_ms        BIGINT NOT NULL,
    ip_prefix             TEXT,
    payload               TEXT NOT NULL,
    PRIMARY KEY (source_id, message_id)
);
CREATE INDEX events_subject_key ON events (subject_key);
CREATE INDEX events_user ON events (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX events_received ON events (received_at_ms);

CREATE TABLE consent_records (
    source_id          TEXT NOT NULL,
    consent_id         TEXT NOT NULL,
    subject            TEXT NOT NULL,
    user_id            TEXT,
    purposes           TEXT NOT NULL,
    policy_version     TEXT NOT NULL,
    method             TEXT NOT NULL,
    origin             TEXT NOT NULL,
    timestamp_ms       BIGINT NOT NULL,
    original_timestamp_ms BIGINT NOT NULL,
    received_at_ms     BIGINT NOT NULL,
    audit_seq          BIGINT NOT NULL,
    PRIMARY KEY (source_id, consent_id)
);
CREATE INDEX consent_subject ON consent_records (subject, timestamp_ms);

CREATE TABLE dead_letters (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id      TEXT NOT NULL,
    message_id     TEXT,
    code           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at_ms);

-- The audit chain: no personal data here, only hashes. Append-only.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- What each audit entry is about, kept apart so that erasing a subject removes it while
-- the chain (which commits to its hash) still verifies.
CREATE TABLE audit_data (
    seq     BIGINT PRIMARY KEY,
    subject TEXT,
    data    TEXT NOT NULL
);
CREATE INDEX audit_data_subject ON audit_data (subject);
