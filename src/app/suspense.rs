//! Working the suspense queue (`case-registry.md`): the back office lists what the gateway
//! could not identify, resolves an item to an obligor (it becomes a collection effective on
//! the line's pay date, distributed by the next run) or returns it to its sender. Once only:
//! a second attempt, or a second clerk at the same moment, changes nothing.

use chrono::Duration;

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller, CollectionView};
use crate::domain::access::Action;
use crate::domain::codes::ProblemCode;
use crate::domain::{CaseNumber, Fein, Money, ObligorId};
pub use crate::storage::suspense::SuspenseOrder;
use crate::storage::suspense::{SuspenseCursor, SuspenseFilter, SuspenseItem, Worked, Worker};

/// The name of the suspense list, in its page tokens.
pub const SUSPENSE_LIST: &str = "suspense";

/// The longest reason and reference of a return.
const MAX_RETURN_REASON_CHARS: usize = 200;
const MAX_RETURN_REFERENCE_CHARS: usize = 64;

/// Where an item is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SuspenseState {
    #[default]
    Open,
    Resolved,
    Returned,
}

impl SuspenseState {
    pub fn as_str(self) -> &'static str {
        match self {
            SuspenseState::Open => "OPEN",
            SuspenseState::Resolved => "RESOLVED",
            SuspenseState::Returned => "RETURNED",
        }
    }
}

/// Which items to list; every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct SuspenseQuery {
    pub state: SuspenseState,
    /// The sender (a key name) whose files the items came from.
    pub sender: Option<String>,
    pub employer_fein: Option<Fein>,
    /// The sender's batch id of the file.
    pub batch_id: Option<String>,
    /// The problem code that put the item in suspense.
    pub reason: Option<String>,
    pub min_amount: Option<Money>,
    pub max_amount: Option<Money>,
    /// Items received at least this many days ago.
    pub min_age_days: Option<u32>,
    pub order: SuspenseOrder,
}

/// A page's end as its token carries it: the item's id in the default order (oldest first),
/// the order's name and the item's amount and id in the others. A token of one order is
/// refused by another.
fn cursor_text(order: SuspenseOrder, item: &SuspenseItem) -> String {
    let (id, cents) = (item.suspense_id, item.amount.cents());
    match order {
        SuspenseOrder::OldestFirst => id.to_string(),
        SuspenseOrder::NewestFirst => format!("newest:{id}"),
        SuspenseOrder::LargestFirst => format!("largest:{cents}:{id}"),
        SuspenseOrder::SmallestFirst => format!("smallest:{cents}:{id}"),
    }
}

fn cursor_of(order: SuspenseOrder, text: &str) -> Result<SuspenseCursor, AppError> {
    let number = |text: &str| text.parse::<i64>().ok();
    let parts: Vec<&str> = text.split(':').collect();
    let cursor = match (order, parts.as_slice()) {
        (SuspenseOrder::OldestFirst, [id]) => number(id).map(|id| (0, id)),
        (SuspenseOrder::NewestFirst, ["newest", id]) => number(id).map(|id| (0, id)),
        (SuspenseOrder::LargestFirst, ["largest", cents, id]) | (SuspenseOrder::SmallestFirst, ["smallest", cents, id]) => {
            number(cents).zip(number(id))
        }
        _ => None,
    };
    let (amount_cents, suspense_id) =
        cursor.ok_or_else(|| AppError::invalid("page_token", "not a page token of this list in this order"))?;
    Ok(SuspenseCursor { amount_cents, suspense_id })
}

/// Whom an item is resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveTarget {
    Obligor(ObligorId),
    /// A case, which names its obligor; the collection keeps the case number.
    Case(CaseNumber),
}

/// A return's reason and reference, as a clerk typed them.
#[derive(Clone, Debug)]
pub struct SuspenseReturn {
    pub reason: String,
    pub reference: String,
}

fn not_open(item: SuspenseItem) -> AppError {
    let by = match (&item.worked_by, &item.worked_at) {
        (Some(by), Some(at)) => format!(" by {by} at {at}"),
        _ => String::new(),
    };
    AppError::precondition(
        ProblemCode::SuspenseItemNotOpen,
        format!("suspense:{}", item.suspense_id),
        format!("suspense item {} is already {}{by}: nothing was changed", item.suspense_id, item.state),
    )
}

fn missing(suspense_id: i64) -> AppError {
    AppError::NotFound(format!("suspense item {suspense_id} does not exist"))
}

fn printable(field: &'static str, text: &str, max: usize) -> Result<String, AppError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(AppError::invalid(field, format!("1 to {max} printable characters")));
    }
    Ok(text.to_owned())
}

impl App {
    /// Suspense items in the order asked (oldest first by default), a page at a time.
    pub async fn list_suspense(&self, caller: &Caller, query: SuspenseQuery, page: PageRequest) -> Result<Page<SuspenseItem>, AppError> {
        let audit = self.authorize(caller, Action::ListSuspenseItems, "suspense").await?;
        let result = async {
            let after = page.after.as_deref().map(|text| cursor_of(query.order, text)).transpose()?;
            let order = query.order;
            let filter = SuspenseFilter {
                state: query.state.as_str().to_owned(),
                sender: query.sender,
                employer_fein: query.employer_fein.map(|f| f.as_str().to_owned()),
                batch_id: query.batch_id,
                reason: query.reason,
                min_amount: query.min_amount,
                max_amount: query.max_amount,
                // Received on or before today − N days: before the day after it.
                received_before: query.min_age_days.map(|days| self.today() - Duration::days(i64::from(days)) + Duration::days(1)),
                order,
            };
            let fetched = self.store.suspense_items(&filter, after, page.size + 1).await?;
            Ok(paging::page(SUSPENSE_LIST, page.size, fetched, |item| cursor_text(order, item)))
        }
        .await;
        self.audited_read(audit, result).await
    }

    pub async fn get_suspense_item(&self, caller: &Caller, suspense_id: i64) -> Result<SuspenseItem, AppError> {
        let audit = self.authorize(caller, Action::GetSuspenseItem, format!("suspense:{suspense_id}")).await?;
        let result = self.store.suspense_item(suspense_id).await.map_err(AppError::from).and_then(|item| item.ok_or_else(|| missing(suspense_id)));
        self.audited_read(audit, result).await
    }

    /// Resolves an OPEN item to an obligor: a PAYROLL collection effective on the line's pay
    /// date, waiting for the next distribution run.
    pub async fn resolve_suspense(
        &self,
        caller: &Caller,
        suspense_id: i64,
        target: ResolveTarget,
    ) -> Result<(SuspenseItem, CollectionView), AppError> {
        let audit = self.authorize(caller, Action::ResolveSuspenseItem, format!("suspense:{suspense_id}")).await?;
        let result = async {
            let (obligor, case_number) = match target {
                ResolveTarget::Obligor(obligor) => (obligor, None),
                ResolveTarget::Case(case) => {
                    let owner = self.store.case_owner(&case).await?;
                    let owner = owner.ok_or_else(|| AppError::NotFound(format!("case {case} is not in the registry")))?;
                    (owner, Some(case))
                }
            };
            let worker = Worker { name: caller.principal.name.clone(), at: self.clock.now_rfc3339() };
            match self.store.resolve_suspense(suspense_id, &obligor, case_number.as_ref(), &worker, &audit).await? {
                Worked::Done((item, collection)) => {
                    tracing::info!(suspense_id, collection_id = collection.collection_id, amount = %collection.amount, "suspense item resolved");
                    Ok((item, CollectionView::from(collection)))
                }
                Worked::Missing => Err(missing(suspense_id)),
                Worked::NotOpen(item) => Err(not_open(*item)),
                Worked::UnknownObligor => Err(AppError::NotFound(format!("obligor {obligor} is not in the registry"))),
            }
        }
        .await;
        self.audited_write(audit, result).await
    }

    /// Returns an OPEN item to its sender: no collection is made.
    pub async fn return_suspense(&self, caller: &Caller, suspense_id: i64, request: SuspenseReturn) -> Result<SuspenseItem, AppError> {
        let audit = self.authorize(caller, Action::ReturnSuspenseItem, format!("suspense:{suspense_id}")).await?;
        let result = async {
            let reason = printable("reason", &request.reason, MAX_RETURN_REASON_CHARS);
            let reference = printable("reference", &request.reference, MAX_RETURN_REFERENCE_CHARS);
            let (reason, reference) = match (reason, reference) {
                (Ok(reason), Ok(reference)) => (reason, reference),
                (reason, reference) => {
                    return Err(AppError::every_field([reason.err(), reference.err()]))
                }
            };
            let worker = Worker { name: caller.principal.name.clone(), at: self.clock.now_rfc3339() };
            match self.store.return_suspense(suspense_id, &reason, &reference, &worker, &audit).await? {
                Worked::Done(item) => {
                    tracing::info!(suspense_id, amount = %item.amount, "suspense item returned to its sender");
                    Ok(item)
                }
                Worked::Missing => Err(missing(suspense_id)),
                Worked::NotOpen(item) => Err(not_open(*item)),
                Worked::UnknownObligor => Err(AppError::Internal("a return names no obligor".into())),
            }
        }
        .await;
        self.audited_write(audit, result).await
    }
}
