//! The review-request SQL both backends run, written once (see `sql_store.rs` for why a macro).

use super::reviews::ReviewRecord;
use super::sql_store::{case_number, date, order_id};
use super::StoreError;

pub(super) const REVIEW_COLUMNS: &str =
    "v.review_id, v.order_id, o.case_number, v.requested_on, v.channel, v.reason, v.recorded_by, v.recorded_at";

pub(super) const REVIEW_FROM: &str = "review_requests v JOIN orders o ON o.order_id = v.order_id";

#[derive(sqlx::FromRow)]
pub(super) struct ReviewRow {
    review_id: i64,
    order_id: String,
    case_number: String,
    requested_on: String,
    channel: String,
    reason: String,
    recorded_by: String,
    recorded_at: String,
}

pub(super) fn review(row: ReviewRow) -> Result<ReviewRecord, StoreError> {
    Ok(ReviewRecord {
        review_id: row.review_id,
        order_id: order_id(&row.order_id)?,
        case_number: case_number(&row.case_number)?,
        requested_on: date(&row.requested_on)?,
        channel: row.channel,
        reason: row.reason,
        recorded_by: row.recorded_by,
        recorded_at: row.recorded_at,
    })
}

/// Expands the [`ReviewStore`](super::reviews::ReviewStore) implementation for one backend.
macro_rules! impl_sql_reviews {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::reviews::ReviewStore for $store {
            async fn record_review(
                &self,
                request: &$crate::storage::reviews::NewReview,
                rule: &$crate::storage::reviews::ReviewRule,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::reviews::ReviewOutcome> {
                use $crate::storage::reviews::ReviewOutcome;
                use $crate::storage::sql_reviews::{review, ReviewRow, REVIEW_COLUMNS, REVIEW_FROM};
                let mut tx = self.begin_writing().await?;
                // PostgreSQL: requests for one order are decided one at a time.
                let start: Option<String> =
                    sqlx::query_scalar(&format!("SELECT start_month FROM orders WHERE order_id = $1{}", <$store>::FOR_UPDATE))
                        .bind(request.order_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(start) = start else { return Ok(ReviewOutcome::UnknownOrder) };
                let start = $crate::domain::YearMonth::parse(&start).map_err($crate::storage::sql_store::corrupt("start month"))?.first_day();
                let last: Option<String> = sqlx::query_scalar("SELECT MAX(requested_on) FROM review_requests WHERE order_id = $1")
                    .bind(request.order_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                let last = $crate::storage::sql_store::optional_date(last)?;
                if let Err(free_from) = rule(start, last) {
                    return Ok(ReviewOutcome::Refused { free_from });
                }
                let review_id: i64 = sqlx::query_scalar(
                    "INSERT INTO review_requests (order_id, requested_on, channel, reason, recorded_by, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING review_id",
                )
                .bind(request.order_id.as_str())
                .bind(request.requested_on.to_string())
                .bind(request.channel)
                .bind(&request.reason)
                .bind(&request.recorded_by)
                .bind(&request.recorded_at)
                .fetch_one(&mut *tx)
                .await?;
                let row: ReviewRow = sqlx::query_as(&format!("SELECT {REVIEW_COLUMNS} FROM {REVIEW_FROM} WHERE v.review_id = $1"))
                    .bind(review_id)
                    .fetch_one(&mut *tx)
                    .await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(ReviewOutcome::Recorded(review(row)?))
            }

            async fn review_requests(
                &self,
                order: Option<&$crate::domain::OrderId>,
                after: Option<i64>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::reviews::ReviewRecord>> {
                use $crate::storage::sql_reviews::{review, ReviewRow, REVIEW_COLUMNS, REVIEW_FROM};
                let rows: Vec<ReviewRow> = sqlx::query_as(&format!(
                    "SELECT {REVIEW_COLUMNS} FROM {REVIEW_FROM} WHERE v.review_id > $1 AND ($2 IS NULL OR v.order_id = $2) \
                     ORDER BY v.review_id LIMIT $3"
                ))
                .bind(after.unwrap_or(0))
                .bind(order.map(|o| o.as_str()))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(review).collect()
            }
        }
    };
}

pub(super) use impl_sql_reviews;
