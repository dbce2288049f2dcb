-- The queue of pending collections is cut into segments, keyed (segment, obligor,
-- collection), as on SQLite (sqlite/0020_*.sql says why): a distribution chunk reads, and
-- empties, its range of obligors in each segment. Here every collection is still queued by
-- the per-statement trigger, in segment 0, so the queue is written as before.
--
-- No collection is queued or dequeued while the key is rebuilt.
LOCK TABLE collections, pending_collections IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE pending_collections ADD COLUMN segment BIGINT NOT NULL DEFAULT 0 CHECK (segment >= 0);
ALTER TABLE pending_collections ALTER COLUMN segment DROP DEFAULT;
ALTER TABLE pending_collections DROP CONSTRAINT pending_collections_pkey;
ALTER TABLE pending_collections ADD PRIMARY KEY (segment, obligor_id, collection_id);

CREATE OR REPLACE FUNCTION collections_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date)
    SELECT 0, obligor_id, collection_id, amount_cents, effective_date FROM received;
    RETURN NULL;
END;
$$;
