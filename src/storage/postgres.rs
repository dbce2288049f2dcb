//! PostgreSQL: production, and the way to run several gateway replicas on one database.
//!
//! A URL may list several hosts, as libpq's do (`postgres://u@primary:5432,standby:5432/db`):
//! the gateway works on the one that accepts writes, and when that one fails (a failover:
//! the primary stopped, a standby promoted), it finds the new primary and moves there
//! (see [`failover`]). Calls in flight at that moment fail as UNAVAILABLE, and clients retry.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::sql_access::impl_sql_access;
use super::sql_verify::impl_sql_verify;
use super::sql_explain::impl_sql_explain;
use super::sql_credit::impl_sql_credit;
use super::sql_ends::impl_sql_ends;
use super::sql_payment::impl_sql_payments;
use super::sql_remittance::impl_sql_remittances;
use super::sql_store::impl_sql_store;
use super::sql_obligors::impl_sql_obligors;
use super::sql_reports::impl_sql_reports;
use super::sql_reviews::impl_sql_reviews;
use super::sql_suspense::impl_sql_suspense;
use super::sql_terminations::impl_sql_terminations;
use super::StoreResult;

/// The advisory lock key that serialises distribution runs across replicas ("FSPC-DST").
const DISTRIBUTION_LOCK_KEY: i64 = 0x4653_5043_2d44_5354;

/// The tests' PostgreSQL server (as `tests/common`).
#[cfg(test)]
pub(super) fn test_server_url() -> String {
    std::env::var("GATEWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store on a schema of its own (as `tests/common`) on the tests' PostgreSQL server.
#[cfg(test)]
pub(super) async fn test_store() -> PostgresStore {
    let admin = test_server_url();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let schema = format!("gw_test_unit_{nanos:x}_{}", std::process::id());
    let mut admin_connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("PostgreSQL is required for these tests");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin_connection).await.unwrap();
    let separator = if admin.contains('?') { '&' } else { '?' };
    PostgresStore::connect(&format!("{admin}{separator}options=-c%20search_path%3D{schema}")).await.unwrap()
}

/// Connections of the pool.
const POOL_CONNECTIONS: u32 = 16;

/// Files whose transactions may be open at once. Each holds a connection for as long as it
/// takes and borrows another for each batch's registry lookup, so at most half the pool is
/// held by files: the lookups, and every other call, always find a connection. A further
/// upload waits for a slot, as it waited for a connection before.
const FILE_SLOTS: usize = POOL_CONNECTIONS as usize / 2;

/// Connections the payments' context reads keep beside the pool (`postgres_shelf.rs`); their
/// group commits keep as many again, one a group in flight. At 2,000 payments a second a few
/// reads are under way at once; more at a peak are lent the pool's connections.
const SHELVED_FOR_READS: usize = 4;

/// How long a connection may sit in the pool and still be lent without a ping first.
const LENT_UNCHECKED_WITHIN: Duration = Duration::from_millis(500);

/// Pings a connection that sat idle in the pool for longer than [`LENT_UNCHECKED_WITHIN`];
/// an error (the server went away meanwhile) makes the pool drop it and try another.
async fn alive_if_idle(connection: &mut sqlx::PgConnection, idle_for: Duration) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if idle_for > LENT_UNCHECKED_WITHIN {
        connection.ping().await?;
    }
    Ok(true)
}

pub struct PostgresStore {
    pool: PgPool,
    /// Connections for the payments' context reads, lent without sqlx's pings.
    shelf: super::postgres_shelf::Shelf,
    file_slots: Arc<tokio::sync::Semaphore>,
    /// Commits online payments in groups (`postgres_payments.rs`).
    pub(super) payments: super::payment_groups::GroupCommit,
    /// The task that follows the primary, when the URL lists several hosts.
    _failover: Option<failover::Watcher>,
}

impl PostgresStore {
    /// Rows read to decide a write are locked until the transaction ends.
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    /// Connects to the database a `postgres://` URL names and applies the migrations. A
    /// `search_path` given in the URL's `options` parameter selects the schema.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let hosts = failover::hosts(url)?;
        // sqlx pings every connection it lends (`test_before_acquire`) as well as each it takes
        // back: on a busy pool, a round trip before each statement, on the caller's path. A
        // connection used (and pinged back) within the last half second is lent as is
        // (HikariCP's `aliveBypassWindowMs`); one idle longer is pinged first, and dropped for
        // another if the server is gone. A backend that died inside that half second fails
        // the one call that meets it, UNAVAILABLE, which its client retries.
        let pool_options = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false);
        // When the pool last moved to a new primary: its connections opened before are stale.
        let moved_at: super::postgres_shelf::MovedAt = Arc::default();
        let (pool, failover) = if hosts.len() == 1 {
            let pool = pool_options
                .before_acquire(|connection, meta| Box::pin(alive_if_idle(connection, meta.idle_for)))
                .connect_with(hosts.into_iter().next().expect("one host"))
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            (pool, None)
        } else {
            let (primary, options) = failover::find_primary(&hosts, None).await?;
            // Connections opened before the last move to a new primary are dropped, not reused.
            let moved = moved_at.clone();
            let pool = pool_options
                .after_connect(|connection, _| Box::pin(failover::refuse_standby(connection)))
                .before_acquire(move |connection, meta| {
                    let stale = moved.lock().expect("never poisoned").is_some_and(|at| meta.age > at.elapsed());
                    Box::pin(async move { Ok(!stale && alive_if_idle(connection, meta.idle_for).await?) })
                })
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            let watcher = failover::Watcher::start(pool.clone(), hosts, primary, moved_at.clone());
            (pool, Some(watcher))
        };
        let payments = super::postgres_payments::start(super::postgres_shelf::Shelf::new(
            pool.clone(),
            super::postgres_payments::GROUPS_IN_FLIGHT,
            moved_at.clone(),
        ));
        let shelf = super::postgres_shelf::Shelf::new(pool.clone(), SHELVED_FOR_READS, moved_at);
        Ok(PostgresStore { pool, shelf, file_slots: Arc::new(tokio::sync::Semaphore::new(FILE_SLOTS)), payments, _failover: failover })
    }

    pub(super) fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub(super) fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// Writes an audit row of its own. PostgreSQL's writers do not wait for each other's
    /// files (row locks, not a file lock), so no journal is needed.
    async fn append_audit(&self, entry: &super::AuditEntry) -> StoreResult<()> {
        super::sql_access::insert_audit!(&self.pool, entry)?;
        Ok(())
    }

    /// Commits an accepted payment with those waiting beside it (`postgres_payments.rs`).
    async fn commit_payment(&self, new: super::payment::NewPayment, audit: &super::AuditEntry) -> StoreResult<super::payment::PaymentRecord> {
        self.payments.commit(new, audit).await
    }

    async fn payer_row(&self, payer_id: i64) -> StoreResult<Option<super::sql_payment::PayerRow>> {
        Ok(sqlx::query_as(super::sql_payment::PAYER_QUERY).bind(payer_id).fetch_optional(&self.pool).await?)
    }

    async fn payment_row_by_key(&self, payer_id: i64, key: &str) -> StoreResult<Option<super::sql_payment::PaymentRow>> {
        Ok(sqlx::query_as(&super::sql_payment::PAYMENT_BY_KEY_QUERY).bind(payer_id).bind(key).fetch_optional(&self.pool).await?)
    }

    /// The reads of a payment's context as one statement: one round trip, not four. A row for
    /// each of the case owner's orders (one, its order columns null, when there is none),
    /// each repeating the rest.
    async fn payment_context_rows(&self, payer_id: i64, key: &str, case_number: Option<&str>) -> StoreResult<super::sql_payment::PaymentContextRows> {
        use sqlx::Row;
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let payment: Vec<String> = super::sql_payment::PAYMENT_COLUMNS.split(',').map(|column| format!("k.{}", column.trim())).collect();
            let payer = super::sql_payment::PAYER_QUERY;
            let payer_columns = &payer["SELECT ".len()..payer.find(" FROM ").expect("the payer query selects FROM")];
            let order: Vec<String> = super::sql_store::ORDER_COLUMNS.split(',').map(|column| format!("o.{}", column.trim())).collect();
            // The rows are decoded by position below: a column added to one of the lists must
            // be read there too.
            assert_eq!(
                (payment.len(), payer_columns.split(',').count(), order.len()),
                (11, 15, 7),
                "payment_context_rows reads its columns by position"
            );
            format!(
                "SELECT {}, {payer_columns}, c.obligor_id, {}, o.employer_fein FROM (SELECT 1) AS one \
                 LEFT JOIN payments k ON k.payer_id = $1 AND k.idempotency_key = $2 \
                 LEFT JOIN payers p ON p.payer_id = $1 LEFT JOIN bank_accounts a ON a.payer_id = p.payer_id AND a.active \
                 LEFT JOIN cases c ON c.case_number = $3 LEFT JOIN orders o ON o.obligor_id = c.obligor_id ORDER BY o.order_id",
                payment.join(", "),
                order.join(", ")
            )
        });
        let mut connection = self.shelf.lend().await?;
        let rows = sqlx::query(&QUERY).bind(payer_id).bind(key).bind(case_number).fetch_all(&mut *connection).await?;
        connection.keep();
        let row = rows.first().ok_or_else(|| super::StoreError::Corrupt("a payment's context read no row".into()))?;
        let mut orders = Vec::new();
        for order in &rows {
            if let Some(order_id) = order.try_get::<Option<String>, _>(27)? {
                orders.push((
                    order_id,
                    order.try_get(28)?,
                    order.try_get(29)?,
                    order.try_get(30)?,
                    order.try_get(31)?,
                    order.try_get(32)?,
                    order.try_get(33)?,
                    order.try_get(34)?,
                ));
            }
        }
        let first = match row.try_get::<Option<i64>, _>(0)? {
            None => None,
            Some(payment_id) => Some((
                payment_id,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
                row.try_get(7)?,
                row.try_get(8)?,
                row.try_get(9)?,
                row.try_get(10)?,
            )),
        };
        let payer = match row.try_get::<Option<i64>, _>(11)? {
            None => None,
            Some(payer_id) => Some((
                payer_id,
                row.try_get(12)?,
                row.try_get(13)?,
                row.try_get(14)?,
                row.try_get(15)?,
                row.try_get(16)?,
                row.try_get(17)?,
                row.try_get(18)?,
                row.try_get(19)?,
                row.try_get(20)?,
                row.try_get(21)?,
                row.try_get(22)?,
                row.try_get(23)?,
                row.try_get(24)?,
                row.try_get(25)?,
            )),
        };
        Ok((first, payer, row.try_get(26)?, orders))
    }

    async fn obligor_order_rows(&self, obligor_id: &str) -> StoreResult<Vec<super::sql_payment::ObligorOrderRow>> {
        Ok(sqlx::query_as(&super::sql_payment::OBLIGOR_ORDERS_QUERY).bind(obligor_id).fetch_all(&self.pool).await?)
    }

    async fn case_owner_row(&self, case_number: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(super::sql_store::CASE_OWNER_QUERY).bind(case_number).fetch_optional(&self.pool).await?)
    }

    /// Every audit row is written straight into `audit_log`: nothing to settle.
    async fn settle_audit(&self) -> StoreResult<()> {
        Ok(())
    }

    /// A slot for one file's transaction, held until the file commits or is dropped.
    pub(super) async fn file_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.file_slots.clone().acquire_owned().await.expect("the file slots are never closed")
    }

    /// A read transaction that sees one state of the database for all its statements.
    async fn begin_snapshot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.reader().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        Ok(tx)
    }

    /// A write transaction (PostgreSQL takes row locks as it writes).
    pub(super) async fn begin_writing(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Brings the planner's statistics of the registry up to date after an import, and starts
    /// bringing its visibility map up to date. Until autovacuum gets to them (a minute or
    /// more), a registry grown from nothing to hundreds of thousands of rows still looks empty
    /// to the planner, and the cached plans of the remittance lookups (`ssn_hmac IN (…)`) read
    /// the whole `obligors` table for every batch of lines; and the index-only probes that
    /// check each file's references (migration 0016) read each row's heap page as well, to see
    /// whether it is visible to them (docs/performance.md, "Ingest on PostgreSQL").
    ///
    /// ANALYZE samples, so the import waits for it. VACUUM reads every page the import
    /// changed (a re-import rewrites every row), so it runs after the import has answered, on
    /// a task of its own: it skips a table another VACUUM holds, and leaves the tables' ends
    /// alone (cutting them takes a lock that stops readers and writers for a moment).
    pub(super) async fn registry_changed_in_bulk(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE obligors, cases, orders").execute(self.writer()).await?;
        let pool = self.pool.clone();
        tokio::spawn(async move {
            // Not in a transaction: VACUUM refuses one.
            if let Err(error) = sqlx::raw_sql("VACUUM (SKIP_LOCKED, TRUNCATE false) obligors, cases, orders").execute(&pool).await {
                tracing::warn!(%error, "vacuuming the registry after an import failed; autovacuum will in time");
            }
        });
        Ok(())
    }

    /// One distribution chunk at a time across every replica: the lock is held until the
    /// chunk's transaction ends, so a crashed replica releases it with its connection.
    /// Replicas' runs may interleave chunk by chunk; a collection is claimed only while
    /// still pending, so none is distributed twice.
    pub(super) async fn lock_distribution(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(DISTRIBUTION_LOCK_KEY).execute(&mut **tx).await?;
        Ok(())
    }
}

impl_sql_store!(PostgresStore, Postgres, "postgres");
impl_sql_remittances!(PostgresStore, Postgres);
impl_sql_payments!(PostgresStore, Postgres);
impl_sql_access!(PostgresStore, Postgres);
impl_sql_suspense!(PostgresStore, Postgres);
impl_sql_terminations!(PostgresStore, Postgres);
impl_sql_reviews!(PostgresStore, Postgres);
impl_sql_ends!(PostgresStore, Postgres);
impl_sql_credit!(PostgresStore, Postgres);
impl_sql_explain!(PostgresStore, Postgres);
impl_sql_verify!(PostgresStore, Postgres);
impl_sql_reports!(PostgresStore, Postgres);
impl_sql_obligors!(PostgresStore, Postgres);

/// Following the primary among the hosts a URL lists.
pub mod failover {
    use super::*;
    use crate::storage::StoreError;
    use sqlx::Connection;

    /// How often the watcher checks that the host it works on still takes writes.
    pub const CHECK_EVERY: Duration = Duration::from_millis(500);
    /// How long one host may take to answer the check.
    const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

    /// The connection options of each host a URL lists (libpq's `host1:port1,host2:port2`),
    /// in order. `target_session_attrs` is accepted and implied: the gateway always works on
    /// the host that takes writes.
    pub fn hosts(url: &str) -> Result<Vec<PgConnectOptions>, StoreError> {
        let unsupported = || StoreError::UnsupportedUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let path = strip_parameter(path, "target_session_attrs");
        let listed: Vec<&str> = hosts.split(',').collect();
        if listed.len() > 1 {
            // An empty entry would silently be localhost, and a host or port parameter
            // would silently override every listed host: either would defeat failover.
            let overriding = path.split_once('?').is_some_and(|(_, query)| {
                query.split('&').any(|pair| matches!(pair.split('=').next(), Some("host" | "hostaddr" | "port")))
            });
            if listed.iter().any(|host| host.is_empty()) || overriding {
                return Err(unsupported());
            }
        }
        listed.into_iter().map(|host| Ok(PgConnectOptions::from_str(&format!("{scheme}://{user}{host}{path}"))?)).collect()
    }

    fn strip_parameter(path: &str, name: &str) -> String {
        let Some((before, query)) = path.split_once('?') else { return path.to_owned() };
        let kept: Vec<&str> = query.split('&').filter(|pair| pair.split('=').next() != Some(name)).collect();
        if kept.is_empty() {
            before.to_owned()
        } else {
            format!("{before}?{}", kept.join("&"))
        }
    }

    /// Whether the host takes writes (answers, and is not in recovery); why not, if not.
    async fn takes_writes(options: &PgConnectOptions) -> Result<(), String> {
        let check = async {
            let mut connection = sqlx::PgConnection::connect_with(options).await.map_err(|e| e.to_string())?;
            let in_recovery: bool =
                sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut connection).await.map_err(|e| e.to_string())?;
            let _ = connection.close().await;
            if in_recovery {
                Err("a standby (in recovery)".to_owned())
            } else {
                Ok(())
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
    }

    /// The first host, from `after`'s next on, that takes writes; else what each said.
    pub async fn find_primary(hosts: &[PgConnectOptions], after: Option<usize>) -> Result<(usize, PgConnectOptions), StoreError> {
        let start = after.map_or(0, |index| index + 1);
        let mut why = Vec::new();
        for offset in 0..hosts.len() {
            let index = (start + offset) % hosts.len();
            match takes_writes(&hosts[index]).await {
                Ok(()) => return Ok((index, hosts[index].clone())),
                Err(reason) => why.push(format!("{}:{}: {reason}", hosts[index].get_host(), hosts[index].get_port())),
            }
        }
        Err(StoreError::Database(sqlx::Error::Configuration(format!("no host of the database URL takes writes ({})", why.join("; ")).into())))
    }

    /// Refuses a new pool connection to a host in recovery (libpq's
    /// `target_session_attrs=read-write`, per connection): during the moments before the
    /// watcher notices a demotion, or a connection begun just before a move, nothing lands
    /// on a standby.
    pub async fn refuse_standby(connection: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut *connection).await?;
        if in_recovery {
            // As a refused connection: the call answers UNAVAILABLE, and its retry will
            // find the primary.
            let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connected to a standby, not the primary");
            return Err(sqlx::Error::Io(refused));
        }
        Ok(())
    }

    /// Checks in a row that must fail before the watcher looks for another primary: one slow
    /// answer from a busy primary is not a failover.
    const FAILED_CHECKS_BEFORE_SEARCH: u32 = 3;

    /// The task that checks the primary every [`CHECK_EVERY`] and moves the pool to the new
    /// one when it stops taking writes; stopped when dropped.
    pub struct Watcher(tokio::task::AbortHandle);

    impl Drop for Watcher {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    impl Watcher {
        pub fn start(pool: PgPool, hosts: Vec<PgConnectOptions>, primary: usize, moved_at: Arc<Mutex<Option<Instant>>>) -> Watcher {
            let task = tokio::spawn(async move {
                let mut primary = primary;
                let mut failed = 0;
                loop {
                    tokio::time::sleep(CHECK_EVERY).await;
                    match takes_writes(&hosts[primary]).await {
                        Ok(()) => {
                            failed = 0;
                            continue;
                        }
                        Err(reason) => {
                            failed += 1;
                            tracing::warn!(host = hosts[primary].get_host(), %reason, failed, "the database's primary did not answer as one");
                            if failed < FAILED_CHECKS_BEFORE_SEARCH {
                                continue;
                            }
                        }
                    }
                    match find_primary(&hosts, Some(primary)).await {
                        Ok((index, _)) if index == primary => failed = 0, // it was only slow
                        Ok((index, options)) => {
                            failed = 0;
                            pool.set_connect_options(options);
                            *moved_at.lock().expect("never poisoned") = Some(Instant::now());
                            tracing::warn!(host = hosts[index].get_host(), port = hosts[index].get_port(), "moved to the new primary");
                            primary = index;
                        }
                        Err(error) => tracing::warn!(%error, "no primary yet; looking again"),
                    }
                }
            });
            Watcher(task.abort_handle())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_url_lists_its_hosts_with_the_same_user_database_and_parameters() {
            let hosts = hosts("postgres://gw:secret@db1:5433,db2/agency?target_session_attrs=read-write&application_name=gateway").unwrap();
            let shown: Vec<(String, u16, Option<String>, String)> = hosts
                .iter()
                .map(|h| (h.get_host().to_owned(), h.get_port(), h.get_database().map(str::to_owned), h.get_username().to_owned()))
                .collect();
            assert_eq!(
                shown,
                [("db1".into(), 5433, Some("agency".into()), "gw".into()), ("db2".into(), 5432, Some("agency".into()), "gw".into())]
            );
            assert_eq!(hosts[1].get_application_name(), Some("gateway"));
            assert_eq!(super::hosts("postgres://postgres@127.0.0.1:5432/test").unwrap().len(), 1);
            assert_eq!(strip_parameter("/db?target_session_attrs=read-write", "target_session_attrs"), "/db");
            // What would silently defeat failover is refused.
            assert!(super::hosts("postgres://u@db1,,db2/agency").is_err());
            assert!(super::hosts("postgres://u@db1,db2/agency?port=5433").is_err());
            assert!(super::hosts("postgres://u@db1,db2/agency?host=db3").is_err());
        }
    }
}
