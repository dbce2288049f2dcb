//! The reports' SQL both backends run, written once (see `sql_store.rs` for why a macro).

/// Expands the [`ReportStore`](super::reports::ReportStore) implementation for one backend.
macro_rules! impl_sql_reports {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::reports::ReportStore for $store {
            async fn collections_by_day(
                &self,
                from: Option<chrono::NaiveDate>,
                to: Option<chrono::NaiveDate>,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::reports::DailyCollections>> {
                let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT substr(c.received_at, 1, 10), c.source, COALESCE(l.employer_fein, ''), COUNT(*), \
                     CAST(SUM(c.amount_cents) AS BIGINT) \
                     FROM collections c LEFT JOIN remittance_lines l ON l.remittance_id = c.remittance_id AND l.line = c.remittance_line \
                     WHERE ($1 IS NULL OR substr(c.received_at, 1, 10) >= $1) AND ($2 IS NULL OR substr(c.received_at, 1, 10) <= $2) \
                     GROUP BY substr(c.received_at, 1, 10), c.source, COALESCE(l.employer_fein, '') ORDER BY 1, 2, 3",
                )
                .bind(from.map(|d| d.to_string()))
                .bind(to.map(|d| d.to_string()))
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, source, employer_fein, collections, cents)| $crate::storage::reports::DailyCollections {
                        day,
                        source,
                        employer_fein,
                        collections,
                        amount: $crate::domain::Money::from_cents(cents),
                    })
                    .collect())
            }

            async fn late_lines(
                &self,
                from: Option<chrono::NaiveDate>,
                to: Option<chrono::NaiveDate>,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::reports::LateLine>> {
                use $crate::storage::sql_store::date;
                // The problems are JSON text written by the gateway itself ({"code":"…",…}).
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT COALESCE(l.employer_fein, ''), l.pay_date, r.received_on, COALESCE(l.amount_cents, 0) \
                     FROM remittance_lines l JOIN remittances r ON r.remittance_id = l.remittance_id \
                     WHERE l.status <> 'REJECTED' AND l.pay_date IS NOT NULL AND l.problems LIKE '%\"code\":\"LATE_REMITTANCE\"%' \
                     AND ($1 IS NULL OR r.received_on >= $1) AND ($2 IS NULL OR r.received_on <= $2)",
                )
                .bind(from.map(|d| d.to_string()))
                .bind(to.map(|d| d.to_string()))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(employer_fein, pay_date, received_on, cents)| {
                        Ok($crate::storage::reports::LateLine {
                            employer_fein,
                            pay_date: date(&pay_date)?,
                            received_on: date(&received_on)?,
                            amount: $crate::domain::Money::from_cents(cents),
                        })
                    })
                    .collect()
            }

            async fn open_suspense_by_day(&self) -> $crate::storage::StoreResult<Vec<$crate::storage::reports::SuspenseDay>> {
                use $crate::storage::sql_store::date;
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT r.received_on, COUNT(*), CAST(SUM(s.amount_cents) AS BIGINT) \
                     FROM suspense_items s JOIN remittances r ON r.remittance_id = s.remittance_id \
                     WHERE s.state = 'OPEN' GROUP BY r.received_on ORDER BY r.received_on",
                )
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(received_on, items, cents)| {
                        Ok($crate::storage::reports::SuspenseDay {
                            received_on: date(&received_on)?,
                            items,
                            amount: $crate::domain::Money::from_cents(cents),
                        })
                    })
                    .collect()
            }

            async fn pending_total(&self) -> $crate::storage::StoreResult<$crate::domain::Money> {
                // Pending collections and the correction pools waiting for the next run.
                let (cents,): (i64,) = sqlx::query_as(
                    "SELECT CAST((SELECT COALESCE(SUM(amount_cents), 0) FROM pending_collections) \
                     + (SELECT COALESCE(SUM(amount_cents), 0) FROM allocations WHERE bucket = 'CORRECTION') AS BIGINT)",
                )
                .fetch_one(self.reader())
                .await?;
                Ok($crate::domain::Money::from_cents(cents))
            }

            async fn last_distribution_run(&self) -> $crate::storage::StoreResult<Option<$crate::storage::reports::RunRecord>> {
                let row: Option<(i64, String, i64, i64, i64, i64)> = sqlx::query_as(
                    "SELECT run_id, started_at, collections, pools, total_cents, unapplied_cents FROM distribution_runs \
                     WHERE kind = 'DISTRIBUTION' ORDER BY run_id DESC LIMIT 1",
                )
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|(run_id, started_at, collections, pools, total, unapplied)| $crate::storage::reports::RunRecord {
                    run_id,
                    started_at,
                    collections,
                    pools,
                    total: $crate::domain::Money::from_cents(total),
                    unapplied: $crate::domain::Money::from_cents(unapplied),
                }))
            }
        }
    };
}

pub(super) use impl_sql_reports;
