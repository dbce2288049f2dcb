//! PostgreSQL: production, and the way to run several gateway replicas on one database.

use std::str::FromStr;
use std::time::Duration;

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
use super::sql_reports::impl_sql_reports;
use super::sql_reviews::impl_sql_reviews;
use super::sql_suspense::impl_sql_suspense;
use super::sql_terminations::impl_sql_terminations;
use super::StoreResult;

/// The advisory lock key that serialises distribution runs across replicas ("FSPC-DST").
const DISTRIBUTION_LOCK_KEY: i64 = 0x4653_5043_2d44_5354;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Rows read to decide a write are locked until the transaction ends.
    const FOR_UPDATE: &'static str = " FOR UPDATE";


    /// Connects to the database a `postgres://` URL names and applies the migrations. A
    /// `search_path` given in the URL's `options` parameter selects the schema.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect_with(options).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// Bounds (or stops bounding) how long the transaction waits for a row lock: a file's
    /// claim of its batch id and content waits at most 2 s for another upload of the same
    /// ones, instead of holding a connection for as long as that other file takes.
    async fn bound_claim_wait(tx: &mut Transaction<'_, Postgres>, bounded: bool) -> StoreResult<()> {
        let statement = if bounded { "SET LOCAL lock_timeout = '2s'" } else { "SET LOCAL lock_timeout = DEFAULT" };
        sqlx::query(statement).execute(&mut **tx).await?;
        Ok(())
    }

    /// A read transaction that sees one state of the database for all its statements.
    async fn begin_snapshot(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.reader().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        Ok(tx)
    }

    /// A write transaction (PostgreSQL takes row locks as it writes).
    async fn begin_writing(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// One distribution chunk at a time across every replica: the lock is held until the
    /// chunk's transaction ends, so a crashed replica releases it with its connection.
    /// Replicas' runs may interleave chunk by chunk; a collection is claimed only while
    /// still pending, so none is distributed twice.
    async fn lock_distribution(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(DISTRIBUTION_LOCK_KEY).execute(&mut **tx).await?;
        Ok(())
    }
}

impl_sql_store!(PostgresStore, Postgres, "postgres");
impl_sql_remittances!(PostgresStore, PostgresRemittanceWriter, Postgres);
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
