-- Remittance files from payroll vendors and employers, their lines, the suspense queue and
-- termination notices (remittance-formats.md). PostgreSQL's twin: postgres/0002_*.sql.

-- One accepted file. Refused files are not recorded, so a corrected file can be resent with
-- the same batch id.
CREATE TABLE remittances (
    remittance_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    sender               TEXT NOT NULL,
    batch_id             TEXT NOT NULL,
    format               TEXT NOT NULL CHECK (format IN ('CSV', 'XML', 'NACHA')),
    content_sha256       TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    received_on          TEXT NOT NULL,
    line_count           INTEGER NOT NULL,
    total_cents          INTEGER NOT NULL,
    applied              INTEGER NOT NULL,
    applied_by_ssn       INTEGER NOT NULL,
    suspense             INTEGER NOT NULL,
    rejected             INTEGER NOT NULL,
    -- The batch id is the sender's control number, unique per sender for ever.
    UNIQUE (sender, batch_id)
);
CREATE INDEX remittances_by_content ON remittances (sender, content_sha256);

-- Every line of an accepted file with its outcome. SSNs only as HMAC and last 4 digits.
CREATE TABLE remittance_lines (
    remittance_id  INTEGER NOT NULL REFERENCES remittances (remittance_id),
    line           INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('APPLIED', 'APPLIED_BY_SSN', 'SUSPENSE', 'REJECTED')),
    employer_fein  TEXT,
    case_number    TEXT,
    ssn_last4      TEXT,
    amount_cents   INTEGER,
    pay_date       TEXT,
    obligor_id     TEXT REFERENCES obligors (obligor_id),
    prenote        BOOLEAN NOT NULL,
    -- JSON array of {code, field, severity, message}: read back whole, never queried inside.
    problems       TEXT NOT NULL,
    PRIMARY KEY (remittance_id, line)
);

-- Money recorded but not identified to an obligor, for the back office.
CREATE TABLE suspense_items (
    suspense_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    remittance_id   INTEGER NOT NULL REFERENCES remittances (remittance_id),
    line            INTEGER NOT NULL,
    employer_fein   TEXT,
    case_number     TEXT,
    ssn_hmac        TEXT,
    ssn_last4       TEXT,
    amount_cents    INTEGER NOT NULL CHECK (amount_cents > 0),
    pay_date        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('OPEN', 'RESOLVED', 'RETURNED')),
    resolved_obligor_id TEXT REFERENCES obligors (obligor_id),
    created_at      TEXT NOT NULL
);

-- An employer's notice that an employee left (employment terminated = Y).
CREATE TABLE termination_notices (
    notice_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    remittance_id   INTEGER NOT NULL REFERENCES remittances (remittance_id),
    line            INTEGER NOT NULL,
    employer_fein   TEXT,
    obligor_id      TEXT REFERENCES obligors (obligor_id),
    case_number     TEXT,
    ssn_last4       TEXT,
    pay_date        TEXT,
    created_at      TEXT NOT NULL
);

-- A payroll collection remembers the line it came from (and so the line its collection).
ALTER TABLE collections ADD COLUMN remittance_id INTEGER REFERENCES remittances (remittance_id);
ALTER TABLE collections ADD COLUMN remittance_line INTEGER;
