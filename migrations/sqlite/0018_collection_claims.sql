-- A distribution run took each collection by rewriting its row (status and pool). A run's
-- chunk covers a range of obligors, but collections lie in the order received, so one
-- chunk's claims rewrote pages all over `collections`: most of the table went through the
-- WAL and the checkpoint again for every chunk, and a run grew with the table's history.
--
-- A collection's row is now written once, when received; what happens to it afterwards is
-- kept in tables ordered by obligor, which a chunk's range reads, deletes and appends as
-- contiguous pages:
--   pending_collections  the collections waiting for a run (filled by a trigger as they are
--                        received; a run or a cancellation takes them out);
--   collection_claims    the pool each distributed collection went into, and its amount.
-- A collection is PENDING while queued, DISTRIBUTED once claimed, and REVERSED when
-- `reversed` is set (a payment returned), claimed or not.
--
-- collections is a parent (of payments, suspense items and reversal rows): it is copied
-- aside, dropped and made again under its own name, keeping every id; foreign keys are
-- checked at commit, when every row is back. The copy is a table of the main database, not
-- a temporary one, which the writer would hold in memory. While a parent's rows are away,
-- SQLite looks up each one's children as it is deleted and put back: the interim indexes
-- make each lookup a seek instead of a scan of allocations, payments or suspense items.
PRAGMA defer_foreign_keys = ON;
CREATE INDEX interim_payments_by_collection ON payments (collection_id);
CREATE INDEX interim_allocations_by_reversed ON allocations (reversal_of) WHERE reversal_of IS NOT NULL;
CREATE INDEX interim_suspense_by_collection ON suspense_items (collection_id) WHERE collection_id IS NOT NULL;

CREATE TABLE collections_before AS SELECT * FROM collections;
DROP TABLE collections;
CREATE TABLE collections (
    collection_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    obligor_id      TEXT NOT NULL REFERENCES obligors (obligor_id),
    case_number     TEXT REFERENCES cases (case_number),
    source          TEXT NOT NULL CHECK (source IN ('PAYROLL', 'ONLINE', 'MANUAL')),
    amount_cents    INTEGER NOT NULL CHECK (amount_cents > 0),
    effective_date  TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    remittance_id   INTEGER REFERENCES remittances (remittance_id),
    remittance_line INTEGER,
    -- Set when a returned payment took the collection back.
    reversed        BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO collections (collection_id, obligor_id, case_number, source, amount_cents, effective_date, received_at,
                         remittance_id, remittance_line, reversed)
    SELECT collection_id, obligor_id, case_number, source, amount_cents, effective_date, received_at,
           remittance_id, remittance_line, status = 'REVERSED'
    FROM collections_before ORDER BY collection_id;

-- The queue a run reads by obligor range. It carries the amount and date a run needs, so a
-- run never reads `collections`. The trigger copies them from the row as received.
CREATE TABLE pending_collections (
    obligor_id     TEXT NOT NULL,
    collection_id  INTEGER NOT NULL REFERENCES collections (collection_id),
    amount_cents   INTEGER NOT NULL,
    effective_date TEXT NOT NULL,
    PRIMARY KEY (obligor_id, collection_id)
) WITHOUT ROWID;
INSERT INTO pending_collections (obligor_id, collection_id, amount_cents, effective_date)
    SELECT obligor_id, collection_id, amount_cents, effective_date FROM collections_before WHERE status = 'PENDING';

CREATE TRIGGER collections_queued AFTER INSERT ON collections
BEGIN
    INSERT INTO pending_collections (obligor_id, collection_id, amount_cents, effective_date)
        VALUES (NEW.obligor_id, NEW.collection_id, NEW.amount_cents, NEW.effective_date);
END;

-- Append-only. The key (obligor, collection) takes each collection once and keeps a chunk's
-- claims together. No foreign key to `collections`: checking it would read one scattered
-- page of that table per claim, the cost this table exists to avoid; `gateway verify`
-- checks every claim against its collection (obligor and amount).
CREATE TABLE collection_claims (
    obligor_id    TEXT NOT NULL,
    collection_id INTEGER NOT NULL,
    pool_id       INTEGER NOT NULL REFERENCES pools (pool_id),
    amount_cents  INTEGER NOT NULL CHECK (amount_cents > 0),
    PRIMARY KEY (obligor_id, collection_id)
) WITHOUT ROWID;
INSERT INTO collection_claims (obligor_id, collection_id, pool_id, amount_cents)
    SELECT obligor_id, collection_id, pool_id, amount_cents FROM collections_before WHERE pool_id IS NOT NULL;
-- A pool's collections: explanations, reversals and a chunk's conservation sums.
CREATE INDEX collection_claims_by_pool ON collection_claims (pool_id);

CREATE TRIGGER collection_claims_no_update BEFORE UPDATE ON collection_claims
BEGIN
    SELECT RAISE(ABORT, 'collection claims are append-only');
END;
CREATE TRIGGER collection_claims_no_delete BEFORE DELETE ON collection_claims
BEGIN
    SELECT RAISE(ABORT, 'collection claims are append-only');
END;

DROP TABLE collections_before;
DROP INDEX interim_payments_by_collection;
DROP INDEX interim_allocations_by_reversed;
DROP INDEX interim_suspense_by_collection;
