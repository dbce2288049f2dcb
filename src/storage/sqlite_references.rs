//! A remittance file's references to the registry, checked by the file writer in bulk.
//!
//! The schema declares a file's references as foreign keys: each line's obligor (in its line,
//! its collection and its termination notice), each collection's case, and the file itself.
//! SQLite checks a foreign key row by row: five index seeks a line (the obligor twice, the
//! case, the file twice), each at a random place in indexes of hundreds of thousands of keys,
//! were about a third of the file writer's time (docs/performance.md, "Ingest on SQLite").
//!
//! So the file thread turns SQLite's enforcement off for a file's transaction and checks the
//! same references here: the keys the rows name are gathered as they are written
//! (`file_references.rs`, shared with PostgreSQL), and every
//! [`CHECK_EVERY_LINES`](super::file_references::CHECK_EVERY_LINES) lines, and before the
//! file commits, each distinct one is looked up once, in key order, so consecutive lookups
//! walk the index's pages in order instead of jumping about them. The file's own id needs no
//! check: its row was inserted by the same transaction. This runs inside the file's
//! transaction, which holds SQLite's one write lock, so no parent can be removed between the
//! check and the commit: a file commits only what the foreign keys would have let it commit.
//! `gateway verify` checks every stored row's references again (`references_in_the_registry`).

use rusqlite::Connection;

use super::file_references::GatheredKeys;
use super::remittance::LineToWrite;
use super::{StoreError, StoreResult};

/// Distinct keys a statement looks up at once. Every statement binds this many (the last key
/// repeated), so one prepared statement serves every check.
const KEYS_PER_STATEMENT: usize = 250;

/// The registry keys an open file's rows name and nobody has checked yet.
#[derive(Default)]
pub(super) struct RegistryReferences {
    keys: GatheredKeys,
}

impl RegistryReferences {
    /// Gathers the keys `lines` name, and checks all gathered once there are enough.
    pub(super) fn add(&mut self, connection: &Connection, lines: &[LineToWrite]) -> StoreResult<()> {
        if self.keys.gather(lines) {
            self.check(connection)?;
        }
        Ok(())
    }

    /// Checks every key gathered: an obligor or case the registry does not hold is refused,
    /// named in the error, and the caller rolls the file back.
    pub(super) fn check(&mut self, connection: &Connection) -> StoreResult<()> {
        for of_table in self.keys.to_check() {
            if let Some(missing) = first_missing(connection, of_table.table, of_table.column, &of_table.keys)? {
                return Err((of_table.refusal)(missing));
            }
        }
        self.keys.checked();
        Ok(())
    }
}

/// The first of `keys` (sorted, distinct) that `table` has no row for, if any.
fn first_missing<'k>(connection: &Connection, table: &str, column: &str, keys: &[&'k str]) -> StoreResult<Option<&'k str>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut count = connection
        .prepare_cached(&format!("SELECT COUNT(*) FROM {table} WHERE {column} IN ({})", vec!["?"; KEYS_PER_STATEMENT].join(", ")))?;
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        for index in 0..KEYS_PER_STATEMENT {
            // Repeating the last key adds nothing to the count: IN matches each row once.
            count.raw_bind_parameter(index + 1, chunk[index.min(chunk.len() - 1)])?;
        }
        let found: i64 = {
            let mut rows = count.raw_query();
            let row = rows.next()?.ok_or_else(|| StoreError::Corrupt("COUNT(*) returned no row".into()))?;
            row.get(0)?
        };
        if usize::try_from(found).ok() != Some(chunk.len()) {
            let mut one = connection.prepare_cached(&format!("SELECT 1 FROM {table} WHERE {column} = ?1"))?;
            for key in chunk {
                if !one.exists([key])? {
                    return Ok(Some(key));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::file_references::CHECK_EVERY_LINES;
    use super::*;

    fn registry() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE obligors (obligor_id TEXT PRIMARY KEY)").unwrap();
        let mut insert = connection.prepare("INSERT INTO obligors VALUES (?1)").unwrap();
        for n in 0..1000 {
            insert.execute([format!("OB{n:04}")]).unwrap();
        }
        drop(insert);
        connection
    }

    fn line_of(obligor: &str) -> LineToWrite {
        use super::super::remittance::{LineEffects, PayrollCollection, StoredLine};
        LineToWrite {
            record: StoredLine {
                line: 1,
                status: "APPLIED".into(),
                employer_fein: None,
                case_number: None,
                ssn_last4: None,
                amount: None,
                pay_date: None,
                obligor_id: Some(crate::domain::ObligorId::parse(obligor).unwrap()),
                prenote: false,
                problems: vec![],
            },
            effects: LineEffects { collect: Some(PayrollCollection { case_number: None }), suspense: None, termination_notice: false },
        }
    }

    /// Keys are checked once `CHECK_EVERY_LINES` lines have gathered, not only at the end, and
    /// forgotten once found good; a missing one is refused when its check comes.
    #[test]
    fn references_are_checked_every_so_many_lines_and_at_the_end() {
        let connection = registry();
        let mut references = RegistryReferences::default();
        let good: Vec<LineToWrite> = (0..CHECK_EVERY_LINES).map(|n| line_of(&format!("OB{:04}", n % 1000))).collect();
        references.add(&connection, &good).unwrap();
        assert_eq!((references.keys.lines, references.keys.obligors.len()), (0, 0), "checked and forgotten");

        references.add(&connection, &[line_of("OB-GONE")]).unwrap();
        assert_eq!(references.keys.lines, 1, "one line waits for the next check");
        let refused = references.check(&connection).unwrap_err();
        assert!(refused.to_string().contains("OB-GONE"), "{refused}");

        let mut references = RegistryReferences::default();
        let mut many = good;
        many[CHECK_EVERY_LINES / 2] = line_of("OB-GONE");
        let refused = references.add(&connection, &many).unwrap_err();
        assert!(refused.to_string().contains("OB-GONE"), "refused at the check within the file: {refused}");
    }

    /// Across statements (more keys than one binds), and with the last chunk padded by its
    /// last key, a key that is present counts once and a missing one is found and named.
    #[test]
    fn the_first_missing_key_is_found_in_any_chunk() {
        let connection = registry();
        let present: Vec<String> = (0..1000).step_by(2).map(|n| format!("OB{n:04}")).collect();
        let keys: Vec<&str> = present.iter().map(String::as_str).collect();
        assert_eq!(keys.len(), 2 * KEYS_PER_STATEMENT);
        assert_eq!(first_missing(&connection, "obligors", "obligor_id", &keys).unwrap(), None);
        assert_eq!(first_missing(&connection, "obligors", "obligor_id", &keys[..3]).unwrap(), None);
        assert_eq!(first_missing(&connection, "obligors", "obligor_id", &[]).unwrap(), None);

        for at in [0, KEYS_PER_STATEMENT - 1, KEYS_PER_STATEMENT + 7, keys.len() - 1] {
            let mut with_one_missing = keys.clone();
            with_one_missing[at] = "OB0000x";
            with_one_missing.sort_unstable();
            assert_eq!(first_missing(&connection, "obligors", "obligor_id", &with_one_missing).unwrap(), Some("OB0000x"), "{at}");
        }
        // Missing at the end of a short last chunk, which repeats it as padding.
        let short = ["OB0001", "OB0002", "OB9999"];
        assert_eq!(first_missing(&connection, "obligors", "obligor_id", &short).unwrap(), Some("OB9999"));
    }
}
