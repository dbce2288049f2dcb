//! The explanation service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::convert;
use super::orders::{end_reason, order_id};
use super::proto;
use super::services::{caller_of, understood};
use crate::app::explain::{CollectionExplanation, OrderExplanation};
use crate::app::CollectionView;
use crate::app::AppError;
use crate::domain::access::Action;
use crate::domain::explain::{EndFact, Entry, EntryKind, StatementItem};
use crate::domain::RuleStep;

pub struct Explain(pub crate::app::App);

fn kind(kind: EntryKind) -> proto::EntryKind {
    match kind {
        EntryKind::Distribution => proto::EntryKind::Distribution,
        EntryKind::Reversal => proto::EntryKind::Reversal,
        EntryKind::Correction => proto::EntryKind::Correction,
        EntryKind::CorrectionApplied => proto::EntryKind::CorrectionApplied,
        EntryKind::Credit => proto::EntryKind::Credit,
    }
}

fn step(step: Option<RuleStep>) -> proto::RuleStep {
    match step {
        None => proto::RuleStep::Unspecified,
        Some(RuleStep::CurrentInFull) => proto::RuleStep::CurrentInFull,
        Some(RuleStep::CurrentProrated) => proto::RuleStep::CurrentProrated,
        Some(RuleStep::ArrearsInFull) => proto::RuleStep::ArrearsInFull,
        Some(RuleStep::ArrearsProrated) => proto::RuleStep::ArrearsProrated,
        Some(RuleStep::Unapplied) => proto::RuleStep::Unapplied,
    }
}

fn entry(entry: Entry) -> proto::LedgerEntry {
    proto::LedgerEntry {
        allocation_id: entry.allocation_id,
        run_id: entry.run_id,
        pool_id: entry.pool_id,
        kind: kind(entry.kind).into(),
        write_date: entry.written_on.to_string(),
        effective_date: entry.effective_date.to_string(),
        order_id: entry.order_id.map(|o| o.to_string()).unwrap_or_default(),
        bucket: convert::bucket(entry.bucket).into(),
        month: entry.month.map(|m| m.to_string()).unwrap_or_default(),
        amount: entry.amount.to_string(),
        step: step(entry.step).into(),
        reversal_of_collection_id: entry.reversal_of.unwrap_or_default(),
        end_id: entry.end_id.unwrap_or_default(),
        credit_id: entry.credit_id.unwrap_or_default(),
    }
}

fn end(order: &str, end: EndFact) -> proto::OrderEnd {
    let (withdrawn_by, withdrawn_on) = end.withdrawn.map_or((String::new(), None), |(by, on)| (by, Some(on)));
    let midnight = |day: chrono::NaiveDate| prost_types::Timestamp { seconds: day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp(), nanos: 0 };
    proto::OrderEnd {
        end_id: end.end_id,
        order_id: order.to_owned(),
        reason: end_reason(end.reason).into(),
        end_date: end.end_date.to_string(),
        recorded_by: end.recorded_by,
        record_time: Some(midnight(end.recorded_on)),
        withdrawn_by,
        withdraw_time: withdrawn_on.map(midnight),
        corrected: String::new(),
        corrected_pools: 0,
    }
}

fn collection(explained: CollectionExplanation) -> proto::ExplainCollectionResponse {
    let pool = explained.pool.map(|(pool_id, effective_date, collections, pool)| proto::PoolExplanation {
        pool_id,
        effective_date: effective_date.to_string(),
        amount: pool.pool_amount.to_string(),
        collections: collections.into_iter().map(|c| CollectionView::from(c).into()).collect(),
        rows: pool.rows.into_iter().map(|row| proto::ExplainedRow { entry: Some(entry(row.entry)), share: row.share.to_string() }).collect(),
        balances: pool
            .balances
            .into_iter()
            .map(|b| proto::OrderBalances {
                order_id: b.order_id.to_string(),
                current_due_before: b.before.current_due.to_string(),
                arrears_before: b.before.arrears.to_string(),
                current_due_after: b.after.current_due.to_string(),
                arrears_after: b.after.arrears.to_string(),
            })
            .collect(),
        later_entries: pool.later.into_iter().map(entry).collect(),
        holds: pool.pool_holds.to_string(),
    });
    proto::ExplainCollectionResponse {
        collection: Some(CollectionView::from(explained.collection).into()),
        receive_time: convert::timestamp(&explained.received_at),
        reversed: explained.reversed.to_string(),
        pool,
    }
}

fn order(explained: OrderExplanation) -> proto::ExplainOrderResponse {
    let order_id = explained.order.id.to_string();
    let statement = explained.statement;
    let lines = statement
        .lines
        .into_iter()
        .map(|line| {
            let mut out = proto::StatementLine {
                date: line.date.to_string(),
                change: line.change.to_string(),
                balance: line.balance.to_string(),
                ..Default::default()
            };
            match line.item {
                StatementItem::Accrual(month) => {
                    out.kind = proto::StatementLineKind::Accrual.into();
                    out.month = month.to_string();
                }
                StatementItem::Entry(item) => {
                    out.kind = proto::StatementLineKind::Entry.into();
                    out.entry = Some(entry(item));
                }
                StatementItem::EndRecorded(fact) => {
                    out.kind = proto::StatementLineKind::EndRecorded.into();
                    out.end = Some(end(&order_id, fact));
                }
                StatementItem::EndWithdrawn(fact) => {
                    out.kind = proto::StatementLineKind::EndWithdrawn.into();
                    out.end = Some(end(&order_id, fact));
                }
            }
            out
        })
        .collect();
    proto::ExplainOrderResponse {
        order_id: order_id.clone(),
        case_number: explained.order.case_number.to_string(),
        obligor_id: explained.obligor_id.to_string(),
        monthly_amount: explained.order.monthly_amount.to_string(),
        end_date: explained.order.end_date.map(|d| d.to_string()).unwrap_or_default(),
        from_date: statement.from.to_string(),
        to_date: statement.to.to_string(),
        opening: statement.opening.to_string(),
        accrued: statement.accrued.to_string(),
        allocated: statement.allocated.to_string(),
        closing: statement.closing.to_string(),
        lines,
    }
}

#[tonic::async_trait]
impl proto::explain_service_server::ExplainService for Explain {
    async fn explain_collection(
        &self,
        request: Request<proto::ExplainCollectionRequest>,
    ) -> Result<Response<proto::ExplainCollectionResponse>, Status> {
        let caller = caller_of(&request)?;
        let id = request.into_inner().collection_id;
        let converted = if id > 0 { Ok(id) } else { Err(AppError::invalid("collection_id", "a collection id above zero")) };
        let id = understood(&self.0, &caller, Action::ExplainCollection, converted).await?;
        let explained = self.0.explain_collection(&caller, id).await?;
        Ok(Response::new(collection(explained)))
    }

    async fn explain_order(&self, request: Request<proto::ExplainOrderRequest>) -> Result<Response<proto::ExplainOrderResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = match (
            order_id("order_id", &request.order_id),
            convert::optional_date("from_date", &request.from_date),
            convert::optional_date("to_date", &request.to_date),
        ) {
            (Ok(order), Ok(from), Ok(to)) => Ok((order, from, to)),
            (order, from, to) => Err(AppError::every_field([order.err(), from.err(), to.err()])),
        };
        let (order_id, from, to) = understood(&self.0, &caller, Action::ExplainOrder, converted).await?;
        let explained = self.0.explain_order(&caller, order_id, from, to).await?;
        Ok(Response::new(order(explained)))
    }
}
