-- Order ends, corrections and unapplied credit (order-lifecycle.md). PostgreSQL's twin:
-- postgres/0010_*.sql.
--
-- An end is recorded by the back office (one of six reasons) or by a registry import that
-- sets or moves end_date earlier. orders.end_date stays the end that counts (the earlier of
-- the registry's and the back office's); the registry's own value is kept beside it so that
-- re-importing the registry does not undo an end the back office recorded.
ALTER TABLE orders ADD COLUMN registry_end_date TEXT;
UPDATE orders SET registry_end_date = end_date;

CREATE TABLE order_ends (
    end_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id          TEXT NOT NULL REFERENCES orders (order_id),
    reason            TEXT NOT NULL CHECK (reason IN ('CHILD_MARRIED', 'CHILD_DIED', 'MILITARY', 'SELF_SUPPORTING',
                                                      'AGE_18', 'AGE_21', 'REGISTRY_IMPORT')),
    end_date          TEXT NOT NULL,
    recorded_by       TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    withdrawn_by      TEXT,
    withdrawn_at      TEXT,
    CHECK ((withdrawn_by IS NULL) = (withdrawn_at IS NULL))
);
CREATE INDEX order_ends_by_order ON order_ends (order_id, end_id);
-- At most one end event of the back office in force per order.
CREATE UNIQUE INDEX order_ends_one_active ON order_ends (order_id)
    WHERE withdrawn_at IS NULL AND reason <> 'REGISTRY_IMPORT';

-- The back office's actions on unapplied credit: a refund (with its reference) or an
-- application by hand to an order.
CREATE TABLE credit_actions (
    credit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    obligor_id   TEXT NOT NULL REFERENCES obligors (obligor_id),
    kind         TEXT NOT NULL CHECK (kind IN ('REFUND', 'APPLY')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    reference    TEXT,
    order_id     TEXT REFERENCES orders (order_id),
    month        TEXT,
    recorded_by  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    CHECK ((kind = 'REFUND') = (reference IS NOT NULL AND order_id IS NULL)),
    CHECK ((kind = 'APPLY') = (order_id IS NOT NULL))
);
CREATE INDEX credit_actions_by_obligor ON credit_actions (obligor_id, credit_id);

-- SQLite cannot change a CHECK constraint in place: distribution_runs (a new kind for
-- corrections and credit actions) and allocations (new buckets, and what wrote each row)
-- are rebuilt, rows and ids kept.
--
-- distribution_runs is a parent (of pools and allocations): it is copied aside, dropped and
-- made again under its own name, foreign keys checked at commit when every run is back. The
-- run_id indexes make each check an index lookup, not a scan of pools or allocations.
PRAGMA defer_foreign_keys = ON;
CREATE INDEX pools_by_run ON pools (run_id);
CREATE INDEX allocations_by_run ON allocations (run_id);

CREATE TEMP TABLE runs_before AS SELECT * FROM distribution_runs;
DROP TABLE distribution_runs;
CREATE TABLE distribution_runs (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at      TEXT NOT NULL,
    collections     INTEGER NOT NULL,
    pools           INTEGER NOT NULL,
    total_cents     INTEGER NOT NULL,
    -- Unapplied credit the run wrote (a distribution run: from collections and correction pools).
    unapplied_cents INTEGER NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'DISTRIBUTION' CHECK (kind IN ('DISTRIBUTION', 'REVERSAL', 'CORRECTION', 'CREDIT'))
);
INSERT INTO distribution_runs (run_id, started_at, collections, pools, total_cents, unapplied_cents, kind)
    SELECT run_id, started_at, collections, pools, total_cents, unapplied_cents, kind FROM runs_before;
DROP TABLE runs_before;

-- allocations is no table's parent: it is copied into its successor in the main database
-- (not a temporary table, which the writer keeps in memory), dropped, and the successor
-- renamed.
--
-- Every entry about a pool's money, in the order written. Immutable. A pool's rows add up to
-- its amount less what reversals took back: corrections and credit actions move money
-- between a pool's rows (CURRENT to CORRECTION, UNAPPLIED to REFUNDED or to an order).
CREATE TABLE allocations_next (
    allocation_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES distribution_runs (run_id),
    pool_id        INTEGER NOT NULL REFERENCES pools (pool_id),
    obligor_id     TEXT NOT NULL REFERENCES obligors (obligor_id),
    order_id       TEXT REFERENCES orders (order_id),
    bucket         TEXT NOT NULL CHECK (bucket IN ('CURRENT', 'ARREARS', 'UNAPPLIED', 'CORRECTION', 'REFUNDED')),
    month          TEXT,
    effective_date TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents <> 0),
    reversal_of    INTEGER REFERENCES collections (collection_id),
    -- The distribution rule's step, for rows the rule wrote.
    step           TEXT CHECK (step IN ('CURRENT_IN_FULL', 'CURRENT_PRORATED', 'ARREARS_IN_FULL', 'ARREARS_PRORATED', 'UNAPPLIED')),
    -- The end whose correction wrote the row.
    end_id         INTEGER REFERENCES order_ends (end_id),
    -- The back-office action on unapplied credit that wrote the row.
    credit_id      INTEGER REFERENCES credit_actions (credit_id),
    CHECK ((bucket IN ('CURRENT', 'ARREARS')) = (order_id IS NOT NULL)),
    CHECK ((bucket = 'CURRENT') = (month IS NOT NULL))
);
INSERT INTO allocations_next (allocation_id, run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, reversal_of)
    SELECT allocation_id, run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, reversal_of
    FROM allocations ORDER BY allocation_id;
DROP TABLE allocations;
ALTER TABLE allocations_next RENAME TO allocations;

CREATE INDEX allocations_by_order ON allocations (order_id);
CREATE INDEX allocations_by_pool ON allocations (pool_id);
-- Correction pools waiting for a run, and credit left, by obligor.
CREATE INDEX allocations_corrections ON allocations (obligor_id, pool_id) WHERE bucket = 'CORRECTION';
CREATE INDEX allocations_credit ON allocations (obligor_id, pool_id) WHERE bucket = 'UNAPPLIED';

CREATE TRIGGER allocations_no_update BEFORE UPDATE ON allocations
BEGIN
    SELECT RAISE(ABORT, 'allocations are immutable: write a reversal entry instead');
END;
CREATE TRIGGER allocations_no_delete BEFORE DELETE ON allocations
BEGIN
    SELECT RAISE(ABORT, 'allocations are immutable: write a reversal entry instead');
END;
