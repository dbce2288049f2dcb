//! The termination-notice SQL both backends run, written once (see `sql_store.rs` for why a
//! macro). A notice is handled once: `UPDATE … WHERE handled_at IS NULL`.

use super::sql_store::{corrupt, obligor_id, optional_date};
use super::terminations::TerminationNotice;
use super::StoreError;

pub(super) const NOTICE_COLUMNS: &str = "n.notice_id, r.sender, r.batch_id, n.line, n.employer_fein, n.obligor_id, n.case_number, \
     n.ssn_last4, n.pay_date, n.created_at, n.handled_by, n.handled_at";

pub(super) const NOTICE_FROM: &str = "termination_notices n JOIN remittances r ON r.remittance_id = n.remittance_id";

/// A row selected with [`NOTICE_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct NoticeRow {
    notice_id: i64,
    sender: String,
    batch_id: String,
    line: i64,
    employer_fein: Option<String>,
    obligor_id: Option<String>,
    case_number: Option<String>,
    ssn_last4: Option<String>,
    pay_date: Option<String>,
    created_at: String,
    handled_by: Option<String>,
    handled_at: Option<String>,
}

pub(super) fn notice(row: NoticeRow) -> Result<TerminationNotice, StoreError> {
    Ok(TerminationNotice {
        notice_id: row.notice_id,
        sender: row.sender,
        batch_id: row.batch_id,
        line: u64::try_from(row.line).map_err(corrupt("line"))?,
        employer_fein: row.employer_fein,
        obligor_id: row.obligor_id.as_deref().map(obligor_id).transpose()?,
        case_number: row.case_number,
        ssn_last4: row.ssn_last4,
        pay_date: optional_date(row.pay_date)?,
        created_at: row.created_at,
        handled_by: row.handled_by,
        handled_at: row.handled_at,
    })
}

/// Expands the [`TerminationStore`](super::terminations::TerminationStore) implementation for
/// one backend.
macro_rules! impl_sql_terminations {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::terminations::TerminationStore for $store {
            async fn termination_notices(
                &self,
                filter: &$crate::storage::terminations::NoticeFilter,
                after: Option<i64>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::terminations::TerminationNotice>> {
                use $crate::storage::sql_terminations::{notice, NoticeRow, NOTICE_COLUMNS, NOTICE_FROM};
                let sql = format!(
                    "SELECT {NOTICE_COLUMNS} FROM {NOTICE_FROM} WHERE n.notice_id > $1 \
                     AND ($2 IS NULL OR (n.handled_at IS NOT NULL) = $2) AND ($3 IS NULL OR n.employer_fein = $3) \
                     AND ($4 IS NULL OR n.obligor_id = $4) AND ($5 IS NULL OR r.sender = $5) ORDER BY n.notice_id LIMIT $6"
                );
                let rows: Vec<NoticeRow> = sqlx::query_as(&sql)
                    .bind(after.unwrap_or(0))
                    .bind(filter.handled)
                    .bind(filter.employer_fein.as_deref())
                    .bind(filter.obligor_id.as_deref())
                    .bind(filter.sender.as_deref())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(notice).collect()
            }

            async fn mark_notice_handled(
                &self,
                notice_id: i64,
                worker: &$crate::storage::suspense::Worker,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::terminations::Handled> {
                use $crate::storage::sql_terminations::{notice, NoticeRow, NOTICE_COLUMNS, NOTICE_FROM};
                use $crate::storage::terminations::Handled;
                let mut tx = self.begin_writing().await?;
                let marked = sqlx::query("UPDATE termination_notices SET handled_by = $1, handled_at = $2 WHERE notice_id = $3 AND handled_at IS NULL")
                    .bind(&worker.name)
                    .bind(&worker.at)
                    .bind(notice_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                let row: Option<NoticeRow> = sqlx::query_as(&format!("SELECT {NOTICE_COLUMNS} FROM {NOTICE_FROM} WHERE n.notice_id = $1"))
                    .bind(notice_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(found) = row.map(notice).transpose()? else { return Ok(Handled::Missing) };
                if !marked {
                    return Ok(Handled::Already(Box::new(found)));
                }
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(Handled::Done(Box::new(found)))
            }
        }
    };
}

pub(super) use impl_sql_terminations;
