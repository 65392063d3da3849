-- Feed positions cost less to write (measured: ingest with the feed at 0.89 of without).
-- The transaction id is kept as xid8, the type pg_current_xact_id() returns, instead of
-- being converted to text and then to a bigint for every row; readers convert the few
-- values they compare and return. The sequence hands each session numbers 1,000 at a
-- time: within a transaction they still rise, and a position orders by transaction first.
ALTER TABLE events ALTER COLUMN feed_tx DROP DEFAULT;
ALTER TABLE events ALTER COLUMN feed_tx TYPE xid8 USING feed_tx::text::xid8;
ALTER TABLE events ALTER COLUMN feed_tx SET DEFAULT pg_current_xact_id();
ALTER TABLE consent_records ALTER COLUMN feed_tx DROP DEFAULT;
ALTER TABLE consent_records ALTER COLUMN feed_tx TYPE xid8 USING feed_tx::text::xid8;
ALTER TABLE consent_records ALTER COLUMN feed_tx SET DEFAULT pg_current_xact_id();
ALTER TABLE erasure_notices ALTER COLUMN feed_tx DROP DEFAULT;
ALTER TABLE erasure_notices ALTER COLUMN feed_tx TYPE xid8 USING feed_tx::text::xid8;
ALTER TABLE erasure_notices ALTER COLUMN feed_tx SET DEFAULT pg_current_xact_id();
ALTER SEQUENCE feed_seq CACHE 1000;
