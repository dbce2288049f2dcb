//! The stored facts an explanation is made of: a collection's pool and every entry about it,
//! an order's entries and ends. The explaining itself is `domain::explain`.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{CollectionRecord, StoreResult};
use crate::domain::explain::{EndFact, Entry, OrderRows};
use crate::domain::{Money, ObligorId, Order};

/// A pool as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFacts {
    pub pool_id: i64,
    pub run_id: i64,
    pub effective_date: NaiveDate,
    pub amount: Money,
    /// Every collection merged into it.
    pub collections: Vec<CollectionRecord>,
    /// Every entry about its money, in the order written.
    pub entries: Vec<Entry>,
    /// The orders it touched, each with every entry of theirs `(allocation id, bucket, month,
    /// amount)`.
    pub orders: Vec<OrderRows>,
}

/// A collection and, once distributed, its pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionFacts {
    pub collection: CollectionRecord,
    pub received_at: String,
    pub pool: Option<PoolFacts>,
    /// Entries reversing this collection (in its pool).
    pub reversed: Money,
}

/// An order with everything written about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFacts {
    pub obligor_id: ObligorId,
    pub order: Order,
    pub entries: Vec<Entry>,
    pub ends: Vec<EndFact>,
}

#[async_trait]
pub trait ExplainStore: Send + Sync {
    async fn collection_facts(&self, collection_id: i64) -> StoreResult<Option<CollectionFacts>>;

    async fn order_facts(&self, order_id: &crate::domain::OrderId) -> StoreResult<Option<OrderFacts>>;
}
