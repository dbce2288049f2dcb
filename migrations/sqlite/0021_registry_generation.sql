-- The registry's generation: a number drawn anew by every change to what a remittance line is
-- matched against (a case and its obligor, an obligor and its SSN's HMAC). The server keeps
-- the registry's cases and SSN HMACs in memory for matching files' lines
-- (src/domain/registry_index.rs) and trusts that copy only while the generation it was read
-- at is still the database's: a change made by any process, this server, `gateway admin`
-- or a hand-written statement, is seen by the next batch of lines matched.
-- Drawn at random (64 bits), not counted: a database restored from a copy, or a number set by
-- hand, can never bring back a number an index was read at for another registry.
-- Row triggers (SQLite has no others): an import adding 900,000 rows draws 900,000 times
-- (no visible time in the bench's import); one that changes nothing (cases are only added,
-- an obligor's row rewritten with the same SSN) draws none.
-- PostgreSQL's twin: postgres/0021_*.sql.
CREATE TABLE registry_generation (
    one_row    INTEGER PRIMARY KEY CHECK (one_row = 1),
    generation INTEGER NOT NULL
);
INSERT INTO registry_generation (one_row, generation) VALUES (1, random());
CREATE TRIGGER registry_case_added AFTER INSERT ON cases
BEGIN
    UPDATE registry_generation SET generation = random();
END;
CREATE TRIGGER registry_case_changed AFTER UPDATE OF case_number, obligor_id ON cases
    WHEN NEW.case_number IS NOT OLD.case_number OR NEW.obligor_id IS NOT OLD.obligor_id
BEGIN
    UPDATE registry_generation SET generation = random();
END;
CREATE TRIGGER registry_case_removed AFTER DELETE ON cases
BEGIN
    UPDATE registry_generation SET generation = random();
END;
CREATE TRIGGER registry_obligor_added AFTER INSERT ON obligors
BEGIN
    UPDATE registry_generation SET generation = random();
END;
CREATE TRIGGER registry_obligor_changed AFTER UPDATE OF obligor_id, ssn_hmac ON obligors
    WHEN NEW.obligor_id IS NOT OLD.obligor_id OR NEW.ssn_hmac IS NOT OLD.ssn_hmac
BEGIN
    UPDATE registry_generation SET generation = random();
END;
CREATE TRIGGER registry_obligor_removed AFTER DELETE ON obligors
BEGIN
    UPDATE registry_generation SET generation = random();
END;
