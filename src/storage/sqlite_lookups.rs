//! The registry lookups of remittance lines on SQLite: read connections of their own, a
//! batch's lookups in one read transaction on a blocking thread, each key a point lookup of
//! a statement prepared once.
//!
//! Through sqlx each batch's lookup was a few `IN (…)` statements of 500 parameters, bound
//! by name, each result row handed over a channel from sqlx's worker thread: about as much
//! CPU as writing the lines. Here a batch crosses to a blocking thread once.
//!
//! The point reads of an online payment (its idempotency key, its payer, its case's owner,
//! the owner's orders for the receipt) use the same connections, in one read transaction,
//! and run on the calling task's own thread: each is one statement prepared once, one or a
//! few B-tree descents in pages the cache holds, a few microseconds — less than the two
//! thread switches a hand-over would cost. At 2,000 payments a second those hand-overs to
//! sqlx's worker threads were a third of the server's CPU. A WAL reader does not wait for the writer, so such a read
//! waits only in SQLite's rare recovery of a crashed process's log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use super::remittance::{DirectoryPage, RegistryRows, REGISTRY_GENERATION_QUERY, REGISTRY_ROWS_QUERY};
use super::sql_payment::{ObligorOrderRow, PayerRow, PaymentContextRows, PaymentRow, OBLIGOR_ORDERS_QUERY, PAYER_QUERY, PAYMENT_BY_KEY_QUERY};
use super::sql_store as sql;
use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::domain::registry_index::{RegistryIndex, Unindexable};

/// Idle read connections, opened as needed (at most one per batch looked up at once).
pub(super) struct Lookups {
    file: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Idle connections kept; more may be open while many files are read at once.
const KEPT: usize = 4;

impl Lookups {
    pub(super) fn new(file: &Path) -> Arc<Lookups> {
        Arc::new(Lookups { file: file.to_path_buf(), idle: Mutex::new(Vec::new()) })
    }

    fn connection(&self) -> StoreResult<Connection> {
        if let Some(connection) = self.idle.lock().expect("lookups lock").pop() {
            return Ok(connection);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.file, flags)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(connection)
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().expect("lookups lock");
        if idle.len() < KEPT {
            idle.push(connection);
        }
    }

    /// Runs `read` on an idle connection, on this thread.
    /// A connection left in a transaction (a `read` that began one and failed before its
    /// end) is dropped, which rolls it back, instead of being kept.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let connection = self.connection()?;
        let result = read(&connection);
        if connection.is_autocommit() {
            self.give_back(connection);
        }
        Ok(result?)
    }

    /// Runs `read` on an idle connection, on this thread; `read` must end any transaction it
    /// opens (a connection left in one is not kept).
    pub(super) fn with_connection<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let connection = self.connection()?;
        let result = read(&connection);
        if connection.is_autocommit() {
            self.give_back(connection);
        }
        result
    }

    /// The registry's rows read from one statement (one snapshot) into an index.
    fn registry_index(&self) -> StoreResult<Result<RegistryIndex, Unindexable>> {
        self.with_connection(|connection| {
            let mut statement = connection.prepare(REGISTRY_ROWS_QUERY)?;
            let mut rows = statement.query([])?;
            let mut index = RegistryRows::default();
            while let Some(row) = rows.next()? {
                let text = |column: usize| {
                    let value = row.get_ref(column)?;
                    value
                        .as_str_or_null()
                        .map_err(|error| rusqlite::Error::FromSqlConversionFailure(column, value.data_type(), Box::new(error)))
                };
                if !index.add(row.get(0)?, text(1)?, text(2)?, text(3)?) {
                    break;
                }
            }
            index.finish()
        })
    }

    /// Every case and SSN HMAC asked for that the registry holds, read in one snapshot.
    fn directory(&self, case_numbers: &[String], ssn_hmacs: &[String]) -> StoreResult<DirectoryPage> {
        let connection = self.connection()?;
        let page = read_directory(&connection, case_numbers, ssn_hmacs);
        // A failed read leaves its transaction open; such a connection is not kept.
        if connection.is_autocommit() {
            self.give_back(connection);
        }
        page
    }
}

/// A line's case, read from the covering index alone: left to itself, SQLite's planner
/// prefers the primary key's unique index and then reads the case's row for its obligor, a
/// second random page a line.
const CASE_LOOKUP: &str = "SELECT obligor_id FROM cases INDEXED BY cases_to_obligor WHERE case_number = ?1";

/// An obligor by its SSN's HMAC, from the covering index alone.
const SSN_LOOKUP: &str = "SELECT obligor_id FROM obligors INDEXED BY obligors_by_ssn_covering WHERE ssn_hmac = ?1";

fn read_directory(connection: &Connection, case_numbers: &[String], ssn_hmacs: &[String]) -> StoreResult<DirectoryPage> {
    let mut page = DirectoryPage::default();
    connection.execute_batch("BEGIN")?;
    {
        // Both read one covering index each (migration 0016): one B-tree descent a key.
        let mut case = connection.prepare_cached(CASE_LOOKUP)?;
        for number in case_numbers {
            let found: Option<String> = case.query_row([number], |row| row.get(0)).optional()?;
            if let Some(obligor) = found {
                page.cases.insert(number.clone(), sql::obligor_id(&obligor)?);
            }
        }
        let mut by_ssn = connection.prepare_cached(SSN_LOOKUP)?;
        for hmac in ssn_hmacs {
            let mut rows = by_ssn.query([hmac])?;
            while let Some(row) = rows.next()? {
                let obligor: String = row.get(0)?;
                page.obligors_by_ssn.entry(hmac.clone()).or_default().push(sql::obligor_id(&obligor)?);
            }
        }
    }
    connection.execute_batch("COMMIT")?;
    Ok(page)
}

/// A payer with their active bank account ([`PAYER_QUERY`]).
fn payer_on(connection: &Connection, payer_id: i64) -> rusqlite::Result<Option<PayerRow>> {
    connection.prepare_cached(PAYER_QUERY)?.query_row([payer_id], |row| PayerRow::try_from(row)).optional()
}

/// The payment the payer's idempotency key took, if any.
fn payment_by_key_on(connection: &Connection, payer_id: i64, key: &str) -> rusqlite::Result<Option<PaymentRow>> {
    connection.prepare_cached(&PAYMENT_BY_KEY_QUERY)?.query_row(params![payer_id, key], payment_row).optional()
}

/// The obligor owning a case, from the covering index [`CASE_LOOKUP`] reads.
fn case_owner_on(connection: &Connection, case_number: &str) -> rusqlite::Result<Option<String>> {
    connection.prepare_cached(CASE_LOOKUP)?.query_row([case_number], |row| row.get(0)).optional()
}

/// An obligor's orders, each with its withholding employer's FEIN.
fn obligor_orders_on(connection: &Connection, obligor_id: &str) -> rusqlite::Result<Vec<ObligorOrderRow>> {
    let mut orders = connection.prepare_cached(&OBLIGOR_ORDERS_QUERY)?;
    let rows = orders.query_map([obligor_id], |row| ObligorOrderRow::try_from(row))?;
    rows.collect()
}

impl SqliteStore {
    pub(super) async fn payer_row(&self, payer_id: i64) -> StoreResult<Option<PayerRow>> {
        self.lookups.read(|connection| payer_on(connection, payer_id))
    }

    pub(super) async fn payment_row_by_key(&self, payer_id: i64, key: &str) -> StoreResult<Option<PaymentRow>> {
        self.lookups.read(|connection| payment_by_key_on(connection, payer_id, key))
    }

    /// The reads of a payment's context, in one read transaction.
    pub(super) async fn payment_context_rows(&self, payer_id: i64, key: &str, case_number: Option<&str>) -> StoreResult<PaymentContextRows> {
        // One read transaction: one shared lock and one look at the log for the four.
        self.lookups.read(|connection| {
            connection.execute_batch("BEGIN")?;
            let first = payment_by_key_on(connection, payer_id, key)?;
            let payer = payer_on(connection, payer_id)?;
            let owner = match case_number {
                Some(case_number) => case_owner_on(connection, case_number)?,
                None => None,
            };
            let orders = match &owner {
                Some(owner) => obligor_orders_on(connection, owner)?,
                None => Vec::new(),
            };
            connection.execute_batch("COMMIT")?;
            Ok((first, payer, owner, orders))
        })
    }

    pub(super) async fn obligor_order_rows(&self, obligor_id: &str) -> StoreResult<Vec<ObligorOrderRow>> {
        self.lookups.read(|connection| obligor_orders_on(connection, obligor_id))
    }

    pub(super) async fn case_owner_row(&self, case_number: &str) -> StoreResult<Option<String>> {
        self.lookups.read(|connection| case_owner_on(connection, case_number))
    }

    /// A point read on this thread, like a payment's (a few microseconds).
    pub(super) async fn registry_generation_row(&self) -> StoreResult<i64> {
        self.lookups.read(|connection| connection.prepare_cached(REGISTRY_GENERATION_QUERY)?.query_row([], |row| row.get(0)))
    }

    /// The whole registry read on a blocking thread (about a second for 300,000 obligors).
    pub(super) async fn registry_index_rows(&self) -> StoreResult<Result<RegistryIndex, Unindexable>> {
        let lookups = self.lookups.clone();
        tokio::task::spawn_blocking(move || lookups.registry_index())
            .await
            .map_err(|error| StoreError::Corrupt(format!("reading the registry stopped: {error}")))?
    }

    /// The cases and SSN HMACs a batch of lines quotes, looked up on a blocking thread.
    pub(super) async fn directory_page(&self, case_numbers: Vec<String>, ssn_hmacs: Vec<String>) -> StoreResult<DirectoryPage> {
        let lookups = self.lookups.clone();
        tokio::task::spawn_blocking(move || lookups.directory(&case_numbers, &ssn_hmacs))
            .await
            .map_err(|error| StoreError::Corrupt(format!("a registry lookup stopped: {error}")))?
    }
}

/// A row selected with [`PAYMENT_COLUMNS`](super::sql_payment::PAYMENT_COLUMNS).
pub(super) fn payment_row(row: &Row<'_>) -> rusqlite::Result<PaymentRow> {
    PaymentRow::try_from(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each lookup of a line reads one index, never a table's rows: one random page a key.
    #[tokio::test]
    async fn a_lines_lookups_read_only_their_covering_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.db");
        let _store = SqliteStore::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        let connection = Connection::open(&file).unwrap();
        for (query, index) in [(CASE_LOOKUP, "cases_to_obligor"), (SSN_LOOKUP, "obligors_by_ssn_covering")] {
            let plan: String = connection.query_row(&format!("EXPLAIN QUERY PLAN {query}"), ["x"], |row| row.get(3)).unwrap();
            assert!(plan.contains(&format!("COVERING INDEX {index}")), "{query}: {plan}");
        }
    }
}
