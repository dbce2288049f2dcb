-- The queue of pending collections was one B-tree keyed (obligor, collection). A file's
-- collections arrive in the order of its lines, random over the registry, so each one queued
-- was an insert into another leaf of that tree: measured in the sqlite3 shell on a copy of the
-- bench's database, queueing 1,000,000 collections cost 2.9 s on top of the 0.9 s of writing
-- them, and 5.2 s once a million more were already queued (the tree no longer in the page
-- cache); the file writer spent more time queueing than on everything else it writes.
--
-- The queue is now cut into segments, keyed (segment, obligor, collection). The file writer
-- queues its collections itself, a segment at a time (16,384 collections or a few more, once a
-- batch of lines takes it there, and a file's last 4,096 or more; sorted by obligor; the
-- segment is numbered by its first collection's id, so each one sorts after every segment
-- before it): each entry is an append at the end of the tree. Collections received one
-- at a time (online payments, manual collections, released suspense items) are queued by the
-- trigger, as before, in segment 0, and so are a file's last few (fewer than 4,096) and a
-- small file's, so that segments stay few. A distribution chunk reads, and empties, its range
-- of obligors in each segment: a seek a segment (docs/performance.md, "Session 21: the queue
-- in segments").
-- PostgreSQL's twin: postgres/0020_*.sql.
CREATE TABLE pending_collections_in_segments (
    segment        INTEGER NOT NULL CHECK (segment >= 0),
    obligor_id     TEXT NOT NULL,
    collection_id  INTEGER NOT NULL REFERENCES collections (collection_id),
    amount_cents   INTEGER NOT NULL,
    effective_date TEXT NOT NULL,
    PRIMARY KEY (segment, obligor_id, collection_id)
) WITHOUT ROWID;
INSERT INTO pending_collections_in_segments (segment, obligor_id, collection_id, amount_cents, effective_date)
    SELECT 0, obligor_id, collection_id, amount_cents, effective_date FROM pending_collections ORDER BY obligor_id, collection_id;
DROP TRIGGER collections_queued;
DROP TABLE pending_collections;
ALTER TABLE pending_collections_in_segments RENAME TO pending_collections;

CREATE TRIGGER collections_queued AFTER INSERT ON collections
BEGIN
    INSERT INTO pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date)
        VALUES (0, NEW.obligor_id, NEW.collection_id, NEW.amount_cents, NEW.effective_date);
END;
