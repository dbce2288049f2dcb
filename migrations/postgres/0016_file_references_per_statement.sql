-- A file's rows referred to the registry and to their file through foreign keys, checked row
-- by row: PostgreSQL runs each check as a query of its own (a trigger per row and key), and
-- a 1,000,000-line file made five million of them, two thirds of the time its COPY took
-- (docs/performance.md, "Ingest on PostgreSQL"). The same references are checked here once
-- per statement, over all the rows it wrote: one COPY of a batch is one join per key.
--
-- A foreign key also keeps its parent: a referenced obligor, case or file cannot be deleted
-- or renumbered. None of them ever is (the registry only adds and updates, a refused file
-- leaves no row), and the triggers at the end refuse it, so a reference checked once stays
-- good; `gateway verify` checks every stored one again (`references_in_the_registry`).

ALTER TABLE collections
    DROP CONSTRAINT collections_obligor_id_fkey,
    DROP CONSTRAINT collections_case_number_fkey,
    DROP CONSTRAINT collections_remittance_id_fkey;
ALTER TABLE remittance_lines
    DROP CONSTRAINT remittance_lines_obligor_id_fkey,
    DROP CONSTRAINT remittance_lines_remittance_id_fkey;

-- Raised as foreign_key_violation, what the foreign keys raised.
CREATE FUNCTION collections_reference_what_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing TEXT;
BEGIN
    SELECT r.obligor_id INTO missing FROM received r
        WHERE NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = r.obligor_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a collection names obligor %, which the registry does not hold', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT r.case_number INTO missing FROM received r
        WHERE r.case_number IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.case_number = r.case_number) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a collection names case %, which the registry does not hold', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT CAST(r.remittance_id AS TEXT) INTO missing FROM received r
        WHERE r.remittance_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM remittances f WHERE f.remittance_id = r.remittance_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a collection names file %, which was not received', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER collections_reference_what_exists AFTER INSERT ON collections
    REFERENCING NEW TABLE AS received FOR EACH STATEMENT EXECUTE FUNCTION collections_reference_what_exists();

CREATE FUNCTION remittance_lines_reference_what_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing TEXT;
BEGIN
    SELECT r.obligor_id INTO missing FROM received r
        WHERE r.obligor_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = r.obligor_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a remittance line names obligor %, which the registry does not hold', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT CAST(r.remittance_id AS TEXT) INTO missing FROM received r
        WHERE NOT EXISTS (SELECT 1 FROM remittances f WHERE f.remittance_id = r.remittance_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a remittance line names file %, which was not received', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER remittance_lines_reference_what_exists AFTER INSERT ON remittance_lines
    REFERENCING NEW TABLE AS received FOR EACH STATEMENT EXECUTE FUNCTION remittance_lines_reference_what_exists();

-- What a row refers to is fixed once written (a collection is only ever marked reversed),
-- and its parents stay: no obligor, case or file is deleted (row by row or by TRUNCATE) or
-- given another key.
CREATE FUNCTION refuse_breaking_a_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %: obligors, cases, files and collections are never deleted or renumbered, and what a row refers to never changes',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
END;
$$;
CREATE TRIGGER collections_references_fixed BEFORE UPDATE OF obligor_id, case_number, remittance_id ON collections
    FOR EACH ROW WHEN (NEW.obligor_id IS DISTINCT FROM OLD.obligor_id OR NEW.case_number IS DISTINCT FROM OLD.case_number
                       OR NEW.remittance_id IS DISTINCT FROM OLD.remittance_id)
    EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER remittance_lines_references_fixed BEFORE UPDATE OF obligor_id, remittance_id ON remittance_lines
    FOR EACH ROW WHEN (NEW.obligor_id IS DISTINCT FROM OLD.obligor_id OR NEW.remittance_id IS DISTINCT FROM OLD.remittance_id)
    EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER obligors_never_deleted BEFORE DELETE ON obligors FOR EACH ROW EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER obligors_never_truncated BEFORE TRUNCATE ON obligors FOR EACH STATEMENT EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER obligors_never_renumbered BEFORE UPDATE OF obligor_id ON obligors
    FOR EACH ROW WHEN (NEW.obligor_id IS DISTINCT FROM OLD.obligor_id) EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER cases_never_deleted BEFORE DELETE ON cases FOR EACH ROW EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER cases_never_truncated BEFORE TRUNCATE ON cases FOR EACH STATEMENT EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER cases_never_renumbered BEFORE UPDATE OF case_number ON cases
    FOR EACH ROW WHEN (NEW.case_number IS DISTINCT FROM OLD.case_number) EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER remittances_never_deleted BEFORE DELETE ON remittances FOR EACH ROW EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER remittances_never_truncated BEFORE TRUNCATE ON remittances FOR EACH STATEMENT EXECUTE FUNCTION refuse_breaking_a_reference();
CREATE TRIGGER remittances_never_renumbered BEFORE UPDATE OF remittance_id ON remittances
    FOR EACH ROW WHEN (NEW.remittance_id IS DISTINCT FROM OLD.remittance_id) EXECUTE FUNCTION refuse_breaking_a_reference();
