-- The gateway's first schema (SQLite). PostgreSQL's twin is migrations/postgres/0001_*.sql;
-- the two are kept column for column alike so one set of queries serves both.
--
-- Money is always a whole number of cents (INTEGER); dates are 'YYYY-MM-DD' text and months
-- 'YYYY-MM' text, which sort chronologically.

-- Secrets the gateway generates for itself on first start (the embedded default has no
-- key management). Production sets GATEWAY_PII_KEY instead.
CREATE TABLE gateway_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The paying parents. The SSN is never stored in full: a keyed HMAC for matching payroll
-- lines, and the last 4 digits for display.
CREATE TABLE obligors (
    obligor_id TEXT PRIMARY KEY,
    ssn_hmac   TEXT NOT NULL,
    ssn_last4  TEXT NOT NULL CHECK (length(ssn_last4) = 4),
    last_name  TEXT NOT NULL,
    first_name TEXT NOT NULL
);
CREATE INDEX obligors_by_ssn ON obligors (ssn_hmac);

-- A case belongs to exactly one obligor, for ever: moving it would re-attribute money
-- already distributed.
CREATE TABLE cases (
    case_number TEXT PRIMARY KEY CHECK (length(case_number) = 8),
    obligor_id  TEXT NOT NULL REFERENCES obligors (obligor_id)
);
CREATE INDEX cases_by_obligor ON cases (obligor_id);

CREATE TABLE orders (
    order_id              TEXT PRIMARY KEY,
    case_number           TEXT NOT NULL REFERENCES cases (case_number),
    obligor_id            TEXT NOT NULL REFERENCES obligors (obligor_id),
    monthly_amount_cents  INTEGER NOT NULL CHECK (monthly_amount_cents >= 0),
    start_month           TEXT NOT NULL,
    opening_arrears_cents INTEGER NOT NULL CHECK (opening_arrears_cents >= 0),
    end_date              TEXT,
    employer_fein         TEXT,
    child_birth_date      TEXT,
    continuing_education  BOOLEAN,
    impaired              BOOLEAN
);
CREATE INDEX orders_by_obligor ON orders (obligor_id);

CREATE TABLE distribution_runs (
    run_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at      TEXT NOT NULL,
    collections     INTEGER NOT NULL,
    pools           INTEGER NOT NULL,
    total_cents     INTEGER NOT NULL,
    unapplied_cents INTEGER NOT NULL
);

-- One pool per obligor and effective date in a run: the collections merged into it.
CREATE TABLE pools (
    pool_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES distribution_runs (run_id),
    obligor_id     TEXT NOT NULL REFERENCES obligors (obligor_id),
    effective_date TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0)
);

-- Money received for an obligor. PENDING until a run distributes it.
CREATE TABLE collections (
    collection_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    obligor_id     TEXT NOT NULL REFERENCES obligors (obligor_id),
    case_number    TEXT REFERENCES cases (case_number),
    source         TEXT NOT NULL CHECK (source IN ('PAYROLL', 'ONLINE', 'MANUAL')),
    amount_cents   INTEGER NOT NULL CHECK (amount_cents > 0),
    effective_date TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'DISTRIBUTED', 'REVERSED')),
    pool_id        INTEGER REFERENCES pools (pool_id),
    received_at    TEXT NOT NULL,
    CHECK ((status = 'PENDING') = (pool_id IS NULL) OR status = 'REVERSED')
);
CREATE INDEX collections_pending ON collections (obligor_id) WHERE status = 'PENDING';

-- What distribution wrote, in the order written. Immutable: a reversal adds negative rows.
CREATE TABLE allocations (
    allocation_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES distribution_runs (run_id),
    pool_id        INTEGER NOT NULL REFERENCES pools (pool_id),
    obligor_id     TEXT NOT NULL REFERENCES obligors (obligor_id),
    order_id       TEXT REFERENCES orders (order_id),
    bucket         TEXT NOT NULL CHECK (bucket IN ('CURRENT', 'ARREARS', 'UNAPPLIED')),
    month          TEXT,
    effective_date TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL CHECK (amount_cents <> 0),
    CHECK ((bucket = 'UNAPPLIED') = (order_id IS NULL)),
    CHECK ((bucket = 'CURRENT') = (month IS NOT NULL))
);
CREATE INDEX allocations_by_order ON allocations (order_id);
CREATE INDEX allocations_by_pool ON allocations (pool_id);

CREATE TRIGGER allocations_no_update BEFORE UPDATE ON allocations
BEGIN
    SELECT RAISE(ABORT, 'allocations are immutable: write a reversal entry instead');
END;
CREATE TRIGGER allocations_no_delete BEFORE DELETE ON allocations
BEGIN
    SELECT RAISE(ABORT, 'allocations are immutable: write a reversal entry instead');
END;
