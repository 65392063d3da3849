-- Identity (collector/src/segments/identity.rs): an `identify` carrying an anonymous id
-- and a user id, or an `alias` from a previous id to a user id, merges the first's
-- profile at that source into the second's. Each row records one merge: the pseudonym
-- merged away (`previous_id`), the profile it is now part of (`subject`; kept one hop
-- from it, so a chain of merges points at its end), the event that did it and when.
-- Subject data: access shows them, erasure and a withdrawal of personalization delete
-- them, retention removes them with the profiles (storage/subject_data.rs).
CREATE TABLE identity_links (
    source_id      TEXT NOT NULL,
    previous_id    TEXT NOT NULL,
    subject        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_id, previous_id)
);
CREATE INDEX identity_links_subject ON identity_links (subject);

-- A profile's event that came under another pseudonym (merged in, or sent under a
-- merged id) keeps that pseudonym in `origin_subject`, so a withdrawal or erasure by it removes its
-- events from the merged profile; NULL when it is the profile's own.
ALTER TABLE profile_events ADD COLUMN origin_subject TEXT;
CREATE INDEX profile_events_origin_subject ON profile_events (origin_subject)
    WHERE origin_subject IS NOT NULL;
