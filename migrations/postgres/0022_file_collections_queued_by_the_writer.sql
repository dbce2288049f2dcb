-- A file's collections were queued by the statement trigger of `collections`, each in
-- segment 0 where its obligor sorts: in a 1,000,000-line file, an insert into another leaf of
-- the queue's tree of text keys for each collection, over a third of the time of the backend
-- that writes the file (docs/performance.md, "Session 24").
--
-- The file writer now queues them itself, as SQLite's does (`storage/queue_segments.rs`):
-- a segment at a time, numbered by its first collection's id and sorted by obligor, so that
-- its entries go in at the end of the tree. The trigger gives way to it only in a transaction
-- that says so, which only the file writer's does
-- (`SET LOCAL gateway.file_collections = 'queued by the file writer'`, gone at its end);
-- every other collection (a payment, a released suspense item, a manual one) is queued by
-- the trigger as before. So a file's queue entries are no longer written by the trigger
-- alone (why 0017 could drop their foreign key to `collections`): the file writer counts the
-- collections it sent and those it queued, and refuses to commit unless they are equal, and
-- `gateway verify` checks that every collection is queued or claimed exactly once
-- (`collections_conserved`, `claims_and_queue_are_of_collections`).

CREATE OR REPLACE FUNCTION collections_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('gateway.file_collections', true) = 'queued by the file writer' THEN
        RETURN NULL;
    END IF;
    INSERT INTO pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date)
    SELECT 0, obligor_id, collection_id, amount_cents, effective_date FROM received;
    RETURN NULL;
END;
$$;
