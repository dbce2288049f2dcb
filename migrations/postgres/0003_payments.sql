-- Voluntary online payments (online-payments.md): payers, their one bank account, payments,
-- and ACH returns. SQLite's twin: sqlite/0003_*.sql.

-- A parent (or an employer helping one) registered with the payment web site.
CREATE TABLE payers (
    payer_id     BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    address      TEXT NOT NULL,
    ssn_hmac     TEXT NOT NULL,
    ssn_last4    TEXT NOT NULL,
    telephone    TEXT NOT NULL,
    email        TEXT NOT NULL,
    case_number  TEXT COLLATE "C" NOT NULL REFERENCES cases (case_number),
    created_at   TEXT NOT NULL
);

-- Bank accounts, the current one active. The account number is kept only encrypted
-- (AES-256-GCM) and as its last 4 digits. Replacing an account deactivates the old one.
CREATE TABLE bank_accounts (
    account_id          BIGSERIAL PRIMARY KEY,
    payer_id            BIGINT NOT NULL REFERENCES payers (payer_id),
    routing_number      TEXT NOT NULL,
    account_cipher      TEXT NOT NULL,
    account_last4       TEXT NOT NULL,
    account_type        TEXT NOT NULL CHECK (account_type IN ('CHECKING', 'SAVINGS')),
    added_on            TEXT NOT NULL,
    -- The prenote's result recorded by the back office: CONFIRMED, or RETURNED with a code.
    prenote_result      TEXT CHECK (prenote_result IN ('CONFIRMED', 'RETURNED')),
    prenote_return_code TEXT,
    -- A payment return (R02, R03, R04) that made the account unusable.
    unusable_code       TEXT,
    active              BOOLEAN NOT NULL
);
-- Exactly one bank account per payer.
CREATE UNIQUE INDEX bank_accounts_one_active ON bank_accounts (payer_id) WHERE active;

CREATE TABLE payments (
    payment_id       BIGSERIAL PRIMARY KEY,
    payer_id         BIGINT NOT NULL REFERENCES payers (payer_id),
    account_id       BIGINT NOT NULL REFERENCES bank_accounts (account_id),
    case_number      TEXT COLLATE "C" NOT NULL REFERENCES cases (case_number),
    obligor_id       TEXT COLLATE "C" NOT NULL REFERENCES obligors (obligor_id),
    amount_cents     BIGINT NOT NULL CHECK (amount_cents > 0),
    channel          TEXT NOT NULL CHECK (channel IN ('WEB', 'PHONE')),
    accepted_on      TEXT NOT NULL,
    accepted_at      TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    -- The request's fingerprint: a retried key with a different request is refused.
    request_sha256   TEXT NOT NULL,
    collection_id    BIGINT NOT NULL REFERENCES collections (collection_id),
    -- The ACH debit's trace number, which an ACH return quotes.
    trace_number     TEXT NOT NULL UNIQUE,
    return_code      TEXT,
    returned_at      TEXT,
    UNIQUE (payer_id, idempotency_key)
);

-- Reversal entries are written by a run of their own: the allocation export's run_id.
ALTER TABLE distribution_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'DISTRIBUTION' CHECK (kind IN ('DISTRIBUTION', 'REVERSAL'));
-- A reversal entry names the collection it reverses.
ALTER TABLE allocations ADD COLUMN reversal_of BIGINT REFERENCES collections (collection_id);
