-- A file's lines are stored and read by their key (file, line) alone. As a rowid table,
-- every line was two b-tree inserts: the row under a hidden rowid, and the key's index.
-- WITHOUT ROWID keeps the row in its key's b-tree: one insert a line, and reading a file's
-- lines in order reads one b-tree. Nothing refers to these rows by rowid.
CREATE TABLE remittance_lines_by_key (
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
) WITHOUT ROWID;
INSERT INTO remittance_lines_by_key
    SELECT remittance_id, line, status, employer_fein, case_number, ssn_last4, amount_cents, pay_date, obligor_id, prenote, problems
    FROM remittance_lines;
DROP TABLE remittance_lines;
ALTER TABLE remittance_lines_by_key RENAME TO remittance_lines;
