-- Order ends, corrections and unapplied credit (order-lifecycle.md). SQLite's twin:
-- sqlite/0010_*.sql (which rebuilds two tables where PostgreSQL alters constraints).
ALTER TABLE orders ADD COLUMN registry_end_date TEXT;
UPDATE orders SET registry_end_date = end_date;

CREATE TABLE order_ends (
    end_id            BIGSERIAL PRIMARY KEY,
    order_id          TEXT COLLATE "C" NOT NULL REFERENCES orders (order_id),
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
CREATE UNIQUE INDEX order_ends_one_active ON order_ends (order_id)
    WHERE withdrawn_at IS NULL AND reason <> 'REGISTRY_IMPORT';

CREATE TABLE credit_actions (
    credit_id    BIGSERIAL PRIMARY KEY,
    obligor_id   TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    kind         TEXT NOT NULL CHECK (kind IN ('REFUND', 'APPLY')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reference    TEXT,
    order_id     TEXT COLLATE "C" REFERENCES orders (order_id),
    month        TEXT,
    recorded_by  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    CHECK ((kind = 'REFUND') = (reference IS NOT NULL AND order_id IS NULL)),
    CHECK ((kind = 'APPLY') = (order_id IS NOT NULL))
);
CREATE INDEX credit_actions_by_obligor ON credit_actions (obligor_id, credit_id);

ALTER TABLE distribution_runs DROP CONSTRAINT distribution_runs_kind_check;
ALTER TABLE distribution_runs ADD CONSTRAINT distribution_runs_kind_check
    CHECK (kind IN ('DISTRIBUTION', 'REVERSAL', 'CORRECTION', 'CREDIT'));

ALTER TABLE allocations DROP CONSTRAINT allocations_bucket_check;
ALTER TABLE allocations DROP CONSTRAINT allocations_check;
ALTER TABLE allocations ADD CONSTRAINT allocations_bucket_check
    CHECK (bucket IN ('CURRENT', 'ARREARS', 'UNAPPLIED', 'CORRECTION', 'REFUNDED'));
ALTER TABLE allocations ADD CONSTRAINT allocations_order_money_check
    CHECK ((bucket IN ('CURRENT', 'ARREARS')) = (order_id IS NOT NULL));
ALTER TABLE allocations ADD COLUMN step TEXT
    CHECK (step IN ('CURRENT_IN_FULL', 'CURRENT_PRORATED', 'ARREARS_IN_FULL', 'ARREARS_PRORATED', 'UNAPPLIED'));
ALTER TABLE allocations ADD COLUMN end_id BIGINT REFERENCES order_ends (end_id);
ALTER TABLE allocations ADD COLUMN credit_id BIGINT REFERENCES credit_actions (credit_id);
CREATE INDEX allocations_corrections ON allocations (obligor_id, pool_id) WHERE bucket = 'CORRECTION';
CREATE INDEX allocations_credit ON allocations (obligor_id, pool_id) WHERE bucket = 'UNAPPLIED';
