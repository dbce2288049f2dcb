//! Explaining every cent (`distribution.md`, `order-lifecycle.md`): where a collection went,
//! and an order's statement. The facts come from the store; the arithmetic is
//! `domain::explain`, which asserts that every figure adds up.

use chrono::NaiveDate;

use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::explain::{explain_pool, PoolExplanation, Statement};
use crate::domain::{Money, ObligorId, Order, OrderId};
use crate::storage::explain::{CollectionFacts, PoolFacts};
use crate::storage::CollectionRecord;

/// Where a collection went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionExplanation {
    pub collection: CollectionRecord,
    pub received_at: String,
    /// What of it reversals took back.
    pub reversed: Money,
    /// Its pool, once distributed: the collections merged into it and what it wrote.
    pub pool: Option<(i64, NaiveDate, Vec<CollectionRecord>, PoolExplanation)>,
}

/// An order's statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderExplanation {
    pub obligor_id: ObligorId,
    pub order: Order,
    pub statement: Statement,
}

/// The longest statement range: a clerk's question is about months, rarely decades.
const MAX_STATEMENT_DAYS: i64 = 366 * 30;

impl App {
    pub async fn explain_collection(&self, caller: &Caller, collection_id: i64) -> Result<CollectionExplanation, AppError> {
        let audit = self.authorize(caller, Action::ExplainCollection, format!("collection:{collection_id}")).await?;
        let result = async {
            let facts = self.store.collection_facts(collection_id).await?;
            let Some(CollectionFacts { collection, received_at, pool, reversed }) = facts else {
                return Err(AppError::NotFound(format!("collection {collection_id} does not exist")));
            };
            let pool = pool.map(|PoolFacts { pool_id, run_id, effective_date, amount, collections, entries, orders }| {
                let explained = explain_pool(run_id, amount, collection.amount, entries, &orders);
                (pool_id, effective_date, collections, explained)
            });
            Ok(CollectionExplanation { collection, received_at, reversed, pool })
        }
        .await;
        self.audited_read(audit, result).await
    }

    /// An order's statement from `from` (default: its first month) to `to` (default: today).
    pub async fn explain_order(
        &self,
        caller: &Caller,
        order_id: OrderId,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<OrderExplanation, AppError> {
        let audit = self.authorize(caller, Action::ExplainOrder, format!("order:{order_id}")).await?;
        let result = async {
            let Some(facts) = self.store.order_facts(&order_id).await? else {
                return Err(super::ends::unknown_order(&order_id));
            };
            let from = from.unwrap_or_else(|| facts.order.start_month.first_day());
            let to = to.unwrap_or_else(|| self.today());
            if from > to {
                return Err(AppError::invalid("to", "the range ends on or after its start"));
            }
            if (to - from).num_days() > MAX_STATEMENT_DAYS {
                return Err(AppError::invalid("from", "a statement covers at most 30 years"));
            }
            let statement = crate::domain::explain::statement(&facts.order, &facts.entries, &facts.ends, from, to);
            Ok(OrderExplanation { obligor_id: facts.obligor_id, order: facts.order, statement })
        }
        .await;
        self.audited_read(audit, result).await
    }
}
