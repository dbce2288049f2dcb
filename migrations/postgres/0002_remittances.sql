-- Remittance files from payroll vendors and employers, their lines, the suspense queue and
-- termination notices (remittance-formats.md). SQLite's twin: sqlite/0002_*.sql.

-- One accepted file. Refused files are not recorded, so a corrected file can be resent with
-- the same batch id.
CREATE TABLE remittances (
    remittance_id        BIGSERIAL PRIMARY KEY,
    sender               TEXT COLLATE "C" NOT NULL,
    batch_id             TEXT COLLATE "C" NOT NULL,
    format               TEXT NOT NULL CHECK (format IN ('CSV', 'XML', 'NACHA')),
    content_sha256       TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    received_on          TEXT NOT NULL,
    line_count           BIGINT NOT NULL,
    total_cents          BIGINT NOT NULL,
    applied              BIGINT NOT NULL,
    applied_by_ssn       BIGINT NOT NULL,
    suspense             BIGINT NOT NULL,
    rejected             BIGINT NOT NULL,
    -- The batch id is the sender's control number, unique per sender for ever.
    UNIQUE (sender, batch_id)
);
CREATE INDEX remittances_by_content ON remittances (sender, content_sha256);

-- Every line of an accepted file with its outcome. SSNs only as HMAC and last 4 digits.
CREATE TABLE remittance_lines (
    remittance_id  BIGINT NOT NULL REFERENCES remittances (remittance_id),
    line           BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('APPLIED', 'APPLIED_BY_SSN', 'SUSPENSE', 'REJECTED')),
    employer_fein  TEXT,
    case_number    TEXT COLLATE "C",
    ssn_last4      TEXT,
    amount_cents   BIGINT,
    pay_date       TEXT,
    obligor_id     TEXT COLLATE "C" REFERENCES obligors (obligor_id),
    prenote        BOOLEAN NOT NULL,
    -- JSON array of {code, field, severity, message}: read back whole, never queried inside.
    problems       TEXT NOT NULL,
    PRIMARY KEY (remittance_id, line)
);

-- Money recorded but not identified to an obligor, for the back office.
CREATE TABLE suspense_items (
    suspense_id     BIGSERIAL PRIMARY KEY,
    remittance_id   BIGINT NOT NULL REFERENCES remittances (remittance_id),
    line            BIGINT NOT NULL,
    employer_fein   TEXT,
    case_number     TEXT COLLATE "C",
    ssn_hmac        TEXT,
    ssn_last4       TEXT,
    amount_cents    BIGINT NOT NULL CHECK (amount_cents > 0),
    pay_date        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('OPEN', 'RESOLVED', 'RETURNED')),
    resolved_obligor_id TEXT COLLATE "C" REFERENCES obligors (obligor_id),
    created_at      TEXT NOT NULL
);

-- An employer's notice that an employee left (employment terminated = Y).
CREATE TABLE termination_notices (
    notice_id       BIGSERIAL PRIMARY KEY,
    remittance_id   BIGINT NOT NULL REFERENCES remittances (remittance_id),
    line            BIGINT NOT NULL,
    employer_fein   TEXT,
    obligor_id      TEXT COLLATE "C" REFERENCES obligors (obligor_id),
    case_number     TEXT COLLATE "C",
    ssn_last4       TEXT,
    pay_date        TEXT,
    created_at      TEXT NOT NULL
);

-- A payroll collection remembers the line it came from (and so the line its collection).
ALTER TABLE collections ADD COLUMN remittance_id BIGINT REFERENCES remittances (remittance_id);
ALTER TABLE collections ADD COLUMN remittance_line BIGINT;
