-- The registry's generation: a number drawn anew by every change to what a remittance line is
-- matched against (a case and its obligor, an obligor and its SSN's HMAC). The server keeps
-- the registry's cases and SSN HMACs in memory for matching files' lines
-- (src/domain/registry_index.rs) and trusts that copy only while the generation it was read
-- at is still the database's: a change committed by any replica, `gateway admin` or a
-- hand-written statement is seen by the next batch of lines each replica matches.
-- Drawn at random (64 bits), not counted: a standby promoted without a primary's last commits,
-- or a database restored from a copy, can never bring back a number an index was read at for
-- another registry.
-- Statement triggers: once a statement, whatever its rows (an import's upsert of obligors
-- draws even when it changed nothing; imports are rare). Cases and obligors are never
-- deleted or renumbered (0016). A session that turns triggers off
-- (`session_replication_role = replica`, `ALTER TABLE … DISABLE TRIGGER`) must not change
-- the registry while servers run (docs/reliability.md).
-- SQLite's twin: sqlite/0021_*.sql.
CREATE TABLE registry_generation (
    one_row    BOOLEAN PRIMARY KEY CHECK (one_row),
    generation BIGINT NOT NULL
);
-- 64 random bits: a version 4 UUID's first 12 hexadecimal digits are random (its 13th is
-- the version), and 4 more from a second one.
CREATE FUNCTION registry_generation_drawn() RETURNS bigint LANGUAGE sql AS $$
    SELECT ('x' || left(translate(gen_random_uuid()::text, '-', ''), 12) || left(gen_random_uuid()::text, 4))::bit(64)::bigint
$$;
INSERT INTO registry_generation (one_row, generation) VALUES (TRUE, registry_generation_drawn());
CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_generation SET generation = registry_generation_drawn();
    RETURN NULL;
END;
$$;
CREATE TRIGGER registry_cases_changed AFTER INSERT OR UPDATE OF case_number, obligor_id ON cases
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE TRIGGER registry_obligors_changed AFTER INSERT OR UPDATE OF obligor_id, ssn_hmac ON obligors
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
