-- A distribution run took each collection by rewriting its row (status and pool). A run's
-- chunk covers a range of obligors, but collections lie in the order received, so one
-- chunk's claims rewrote rows (and their index entries) all over `collections`.
--
-- A collection's row is now written once, when received; what happens to it afterwards is
-- kept in tables ordered by obligor, which a chunk's range reads, deletes and appends
-- together (the SQLite migration 0018 says the same):
--   pending_collections  the collections waiting for a run (filled by a trigger as they are
--                        received; a run or a cancellation takes them out);
--   collection_claims    the pool each distributed collection went into, and its amount.
-- A collection is PENDING while queued, DISTRIBUTED once claimed, and REVERSED when
-- `reversed` is set (a payment returned), claimed or not.

-- No collection is received or claimed between the backfill and the trigger (a replica of
-- the previous version still running would otherwise slip one past both).
LOCK TABLE collections IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE pending_collections (
    obligor_id     TEXT COLLATE "C" NOT NULL,
    collection_id  BIGINT NOT NULL REFERENCES collections (collection_id),
    amount_cents   BIGINT NOT NULL,
    effective_date TEXT NOT NULL,
    PRIMARY KEY (obligor_id, collection_id)
);
INSERT INTO pending_collections (obligor_id, collection_id, amount_cents, effective_date)
    SELECT obligor_id, collection_id, amount_cents, effective_date FROM collections WHERE status = 'PENDING';

-- Once per statement, over the rows it wrote: a file's COPY queues its collections in one
-- insert.
CREATE FUNCTION collections_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pending_collections (obligor_id, collection_id, amount_cents, effective_date)
    SELECT obligor_id, collection_id, amount_cents, effective_date FROM received;
    RETURN NULL;
END;
$$;
CREATE TRIGGER collections_queued AFTER INSERT ON collections
    REFERENCING NEW TABLE AS received FOR EACH STATEMENT EXECUTE FUNCTION collections_queued();

-- Append-only. The key (obligor, collection) takes each collection once and keeps a chunk's
-- claims together. No foreign key to `collections` (as on SQLite, where checking it would
-- read a scattered page per claim); `gateway verify` checks every claim against its
-- collection (obligor and amount).
CREATE TABLE collection_claims (
    obligor_id    TEXT COLLATE "C" NOT NULL,
    collection_id BIGINT NOT NULL,
    pool_id       BIGINT NOT NULL REFERENCES pools (pool_id),
    amount_cents  BIGINT NOT NULL CHECK (amount_cents > 0),
    PRIMARY KEY (obligor_id, collection_id)
);
INSERT INTO collection_claims (obligor_id, collection_id, pool_id, amount_cents)
    SELECT obligor_id, collection_id, pool_id, amount_cents FROM collections WHERE pool_id IS NOT NULL;
-- A pool's collections: explanations, reversals and a chunk's conservation sums.
CREATE INDEX collection_claims_by_pool ON collection_claims (pool_id);

CREATE FUNCTION collection_claims_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'collection claims are append-only';
END;
$$;
CREATE TRIGGER collection_claims_no_update_or_delete BEFORE UPDATE OR DELETE ON collection_claims
    FOR EACH ROW EXECUTE FUNCTION collection_claims_are_append_only();

-- Set when a returned payment took the collection back.
ALTER TABLE collections ADD COLUMN reversed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE collections SET reversed = TRUE WHERE status = 'REVERSED';
-- Their indexes (collections_pending, collections_by_pool) and check go with them.
ALTER TABLE collections DROP COLUMN status, DROP COLUMN pool_id;
