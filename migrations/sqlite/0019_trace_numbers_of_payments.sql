-- An ACH debit's trace number is the ODFI's 8-digit prefix and a 7-digit sequence: it comes
-- round every 10,000,000 debits, so it cannot be unique forever. It was the payment's
-- collection id (last 7 digits) and UNIQUE: once ten million collections had been received
-- (ten 1,000,000-line files), a new payment could fall on an earlier payment's number and be
-- refused. A return quotes a trace number within NACHA's return window (60 days at most).
--
-- Now the number comes from a sequence of its own that only payments draw from, so the same
-- number is issued again only 10,000,000 numbers later, far beyond any return window at an
-- agency's rate of payments; it is no longer UNIQUE, and a return names the newest payment
-- that carries it, if the amounts agree
-- (docs/spec-decisions.md, "Trace numbers"). PostgreSQL's twin: postgres/0018_*.sql.
--
-- The sequence starts after every collection id issued so far: the numbers already given
-- out are at most that id's, so the next ones follow them. (Every collection drew a number
-- until now, so the first 10,000,000 after the upgrade can meet one issued before it sooner
-- than 10,000,000 payments later.)
CREATE TABLE payment_trace_sequence (
    -- One row.
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    -- The number the next payment's trace is made from (its last 7 digits).
    next      INTEGER NOT NULL CHECK (next >= 0)
);
INSERT INTO payment_trace_sequence (singleton, next)
    SELECT 1, MAX(COALESCE((SELECT MAX(collection_id) FROM collections), 0),
                  COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'collections'), 0)) + 1;

-- The column's UNIQUE can only go with the table: `payments` is copied aside, dropped and
-- made again under its own name, keeping every id. No table refers to `payments`.
CREATE TABLE payments_before AS SELECT * FROM payments;
CREATE TABLE payments_sequence_before AS SELECT seq FROM sqlite_sequence WHERE name = 'payments';
DROP TABLE payments;
CREATE TABLE payments (
    payment_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    payer_id         INTEGER NOT NULL REFERENCES payers (payer_id),
    account_id       INTEGER NOT NULL REFERENCES bank_accounts (account_id),
    case_number      TEXT NOT NULL REFERENCES cases (case_number),
    obligor_id       TEXT NOT NULL REFERENCES obligors (obligor_id),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    channel          TEXT NOT NULL CHECK (channel IN ('WEB', 'PHONE')),
    accepted_on      TEXT NOT NULL,
    accepted_at      TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    -- The request's fingerprint: a retried key with a different request is refused.
    request_sha256   TEXT NOT NULL,
    collection_id    INTEGER NOT NULL REFERENCES collections (collection_id),
    -- The ACH debit's trace number, which an ACH return quotes: issued again after
    -- 10,000,000 payments, so not unique.
    trace_number     TEXT NOT NULL,
    return_code      TEXT,
    returned_at      TEXT,
    UNIQUE (payer_id, idempotency_key)
);
INSERT INTO payments (payment_id, payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at,
                      idempotency_key, request_sha256, collection_id, trace_number, return_code, returned_at)
    SELECT payment_id, payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at,
           idempotency_key, request_sha256, collection_id, trace_number, return_code, returned_at
    FROM payments_before ORDER BY payment_id;
-- AUTOINCREMENT never gives an id twice, even one whose row is gone: keep its high mark.
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM payments_sequence_before))
    WHERE name = 'payments' AND EXISTS (SELECT 1 FROM payments_sequence_before);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'payments', seq FROM payments_sequence_before WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payments');
DROP TABLE payments_before;
DROP TABLE payments_sequence_before;

-- A return's lookup: the payments with its trace number, newest first.
CREATE INDEX payments_by_trace ON payments (trace_number, payment_id);
