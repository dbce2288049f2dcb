-- A remittance line is matched by its case number and its SSN's HMAC. Each lookup reads
-- one of these indexes alone (they cover the obligor id), instead of an index and then the
-- table's row: one B-tree descent a key instead of two, for every line of every file.
CREATE INDEX cases_to_obligor ON cases (case_number, obligor_id);
CREATE INDEX obligors_by_ssn_covering ON obligors (ssn_hmac, obligor_id);
DROP INDEX obligors_by_ssn;
