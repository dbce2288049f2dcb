-- Termination notices are worked by the back office (the employee left the employer: the
-- income withholding order must go to the next employer): marked handled once, by whom and
-- when.
ALTER TABLE termination_notices ADD COLUMN handled_by TEXT;
ALTER TABLE termination_notices ADD COLUMN handled_at TEXT;

CREATE INDEX termination_notices_by_employer ON termination_notices (employer_fein);
CREATE INDEX termination_notices_by_obligor ON termination_notices (obligor_id);
