-- A file's rows were checked against the registry by the statement triggers of migration
-- 0016: one probe a row and key, five a line (the obligor of a line and of its collection,
-- the collection's case, and the file of each). In a 1,000,000-line file's COPY they were
-- about a third of the time of the backend that writes it, the file's critical path
-- (docs/performance.md, "Ingest on PostgreSQL").
--
-- The file writer now checks the same references itself, as SQLite's does: the keys its rows
-- name are gathered, and every 16,384 lines and before the file commits each distinct one is
-- looked up once, in key order, in the file's own transaction (`storage/file_references.rs`,
-- `storage/postgres_files.rs`). The registry's obligors and cases are never deleted or
-- renumbered (0016's triggers refuse it), so a key found stays good until the commit; each
-- row's file is the one the same transaction inserted. The triggers below give way to it
-- only in a transaction that says so, which only the file writer's does
-- (`SET LOCAL gateway.file_references = 'checked by the file writer'`, gone at its end);
-- every other insert (a payment, a released suspense item, a manual collection) is checked
-- by them as before. `gateway verify` checks every stored reference again.

CREATE OR REPLACE FUNCTION collections_reference_what_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing TEXT;
BEGIN
    IF current_setting('gateway.file_references', true) = 'checked by the file writer' THEN
        RETURN NULL;
    END IF;
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

CREATE OR REPLACE FUNCTION remittance_lines_reference_what_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing TEXT;
BEGIN
    IF current_setting('gateway.file_references', true) = 'checked by the file writer' THEN
        RETURN NULL;
    END IF;
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
