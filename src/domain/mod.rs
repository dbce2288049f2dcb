//! The pure core: values and rules, no I/O.
//!
//! Nothing here imports tokio, sqlx, tonic or the file system, so every rule can be tested
//! as a plain function over values.

pub mod access;
pub mod apportion;
pub mod calendar;
pub mod codes;
pub mod credit;
pub mod distribution;
pub mod explain;
pub mod ids;
pub mod lifecycle;
pub mod money;
pub mod month;
pub mod payment;
pub mod problem_groups;
pub mod registry;
pub mod registry_index;
pub mod remittance;
pub mod reports;
pub mod review;
pub mod text;
pub mod withholding;

pub use codes::{CodeKind, ProblemCode, Severity};
pub use distribution::{Allocation, Bucket, Order, OrderLedger, RuleStep};
pub use ids::{CaseNumber, Fein, IdError, ObligorId, OrderId, Ssn, SsnHmac};
pub use money::{Money, MoneyError};
pub use month::YearMonth;
pub use text::excerpt;

/// Where a collection's money came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectionSource {
    Payroll,
    Online,
    Manual,
}

impl CollectionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionSource::Payroll => "PAYROLL",
            CollectionSource::Online => "ONLINE",
            CollectionSource::Manual => "MANUAL",
        }
    }

    pub fn parse(text: &str) -> Option<CollectionSource> {
        [CollectionSource::Payroll, CollectionSource::Online, CollectionSource::Manual].into_iter().find(|s| s.as_str() == text)
    }
}
