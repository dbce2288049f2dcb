-- The gateway's first schema (PostgreSQL). SQLite's twin is migrations/sqlite/0001_*.sql;
-- the two are kept column for column alike so one set of queries serves both.
--
-- Money is always a whole number of cents (BIGINT); dates are 'YYYY-MM-DD' text and months
-- 'YYYY-MM' text, as on SQLite, so both backends return the same values; CHECKs keep the
-- shape honest. Ids use the "C" collation so that they sort byte by byte, as on SQLite and
-- as the dividing rule compares order ids.

CREATE TABLE gateway_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE obligors (
    obligor_id TEXT COLLATE "C" PRIMARY KEY,
    ssn_hmac   TEXT NOT NULL,
    ssn_last4  TEXT NOT NULL CHECK (length(ssn_last4) = 4),
    last_name  TEXT NOT NULL,
    first_name TEXT NOT NULL
);
CREATE INDEX obligors_by_ssn ON obligors (ssn_hmac);

CREATE TABLE cases (
    case_number TEXT COLLATE "C" PRIMARY KEY CHECK (length(case_number) = 8),
    obligor_id  TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id)
);
CREATE INDEX cases_by_obligor ON cases (obligor_id);

CREATE TABLE orders (
    order_id              TEXT COLLATE "C" PRIMARY KEY,
    case_number           TEXT COLLATE "C" NOT NULL REFERENCES cases (case_number),
    obligor_id            TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    monthly_amount_cents  BIGINT NOT NULL CHECK (monthly_amount_cents >= 0),
    start_month           TEXT NOT NULL CHECK (start_month ~ '^\d{4}-\d{2}$'),
    opening_arrears_cents BIGINT NOT NULL CHECK (opening_arrears_cents >= 0),
    end_date              TEXT CHECK (end_date ~ '^\d{4}-\d{2}-\d{2}$'),
    employer_fein         TEXT,
    child_birth_date      TEXT,
    continuing_education  BOOLEAN,
    impaired              BOOLEAN
);
CREATE INDEX orders_by_obligor ON orders (obligor_id);

CREATE TABLE distribution_runs (
    run_id          BIGSERIAL PRIMARY KEY,
    started_at      TEXT NOT NULL,
    collections     BIGINT NOT NULL,
    pools           BIGINT NOT NULL,
    total_cents     BIGINT NOT NULL,
    unapplied_cents BIGINT NOT NULL
);

CREATE TABLE pools (
    pool_id        BIGSERIAL PRIMARY KEY,
    run_id         BIGINT NOT NULL REFERENCES distribution_runs (run_id),
    obligor_id     TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    effective_date TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0)
);

CREATE TABLE collections (
    collection_id  BIGSERIAL PRIMARY KEY,
    obligor_id     TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    case_number    TEXT COLLATE "C" REFERENCES cases (case_number),
    source         TEXT NOT NULL CHECK (source IN ('PAYROLL', 'ONLINE', 'MANUAL')),
    amount_cents   BIGINT NOT NULL CHECK (amount_cents > 0),
    effective_date TEXT NOT NULL CHECK (effective_date ~ '^\d{4}-\d{2}-\d{2}$'),
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'DISTRIBUTED', 'REVERSED')),
    pool_id        BIGINT REFERENCES pools (pool_id),
    received_at    TEXT NOT NULL,
    CHECK ((status = 'PENDING') = (pool_id IS NULL) OR status = 'REVERSED')
);
CREATE INDEX collections_pending ON collections (obligor_id) WHERE status = 'PENDING';

CREATE TABLE allocations (
    allocation_id  BIGSERIAL PRIMARY KEY,
    run_id         BIGINT NOT NULL REFERENCES distribution_runs (run_id),
    pool_id        BIGINT NOT NULL REFERENCES pools (pool_id),
    obligor_id     TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    order_id       TEXT COLLATE "C" REFERENCES orders (order_id),
    bucket         TEXT NOT NULL CHECK (bucket IN ('CURRENT', 'ARREARS', 'UNAPPLIED')),
    month          TEXT,
    effective_date TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents <> 0),
    CHECK ((bucket = 'UNAPPLIED') = (order_id IS NULL)),
    CHECK ((bucket = 'CURRENT') = (month IS NOT NULL))
);
CREATE INDEX allocations_by_order ON allocations (order_id);
CREATE INDEX allocations_by_pool ON allocations (pool_id);

CREATE FUNCTION allocations_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'allocations are immutable: write a reversal entry instead';
END;
$$;
CREATE TRIGGER allocations_no_update_or_delete BEFORE UPDATE OR DELETE ON allocations
    FOR EACH ROW EXECUTE FUNCTION allocations_are_immutable();
