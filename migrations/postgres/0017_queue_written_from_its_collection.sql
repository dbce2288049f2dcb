-- The queue of pending collections is written only by `collections_queued`, from the rows the
-- same statement inserted into `collections`, so its foreign key to `collections` always held
-- by construction; checked as a query per row, it was about 15 % of a file's COPY
-- (docs/performance.md, "Ingest on PostgreSQL"). `gateway verify` checks every queued and
-- claimed collection against its row (`claims_and_queue_are_of_collections`).
--
-- The key also kept a queued collection from being deleted. None ever is (a returned payment
-- marks its collection reversed): refuse it, row by row and by TRUNCATE.
ALTER TABLE pending_collections DROP CONSTRAINT pending_collections_collection_id_fkey;
CREATE TRIGGER collections_never_deleted BEFORE DELETE ON collections FOR EACH ROW EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER collections_never_truncated BEFORE TRUNCATE ON collections FOR EACH STATEMENT EXECUTE FUNCTION refuse_breaking_a_reference();
