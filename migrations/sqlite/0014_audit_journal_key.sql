-- The key of an audit row that came through the audit journal (`<database>.audit`, see
-- `storage/sqlite_journal.rs`): unique, so a row moved twice (a move that died between its
-- commit here and its delete there) is logged once. NULL for rows written here directly.
ALTER TABLE audit_log ADD COLUMN journal_key TEXT;
CREATE UNIQUE INDEX audit_log_by_journal_key ON audit_log (journal_key);
