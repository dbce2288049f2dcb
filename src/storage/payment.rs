//! What the store keeps of online payments: payers, their bank account, payments (each an
//! ONLINE collection), and returns, which reverse a payment's share of its pool.

use async_trait::async_trait;
use chrono::NaiveDate;

pub use crate::domain::payment::ReturnOutcome;

use super::{AuditEntry, StoreResult};
use crate::domain::distribution::{Allocation, Order, PoolRow};
use crate::domain::{CaseNumber, Money, ObligorId};

#[derive(Clone, Debug)]
pub struct NewPayer {
    pub name: String,
    pub address: String,
    pub ssn_hmac: String,
    pub ssn_last4: String,
    pub telephone: String,
    pub email: String,
    pub case_number: CaseNumber,
    pub created_at: String,
}

#[derive(Clone, Debug)]
pub struct NewBankAccount {
    pub routing_number: String,
    /// The account number sealed with AES-256-GCM.
    pub account_cipher: String,
    pub account_last4: String,
    pub account_type: &'static str,
    pub added_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankAccountRecord {
    pub account_id: i64,
    pub routing_number: String,
    pub account_last4: String,
    pub account_type: String,
    pub added_on: NaiveDate,
    /// CONFIRMED or RETURNED, when the back office recorded the prenote's result.
    pub prenote_result: Option<String>,
    pub prenote_return_code: Option<String>,
    /// The return code of a payment return that made the account unusable.
    pub unusable_code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayerRecord {
    pub payer_id: i64,
    pub name: String,
    pub address: String,
    pub ssn_last4: String,
    pub telephone: String,
    pub email: String,
    pub case_number: String,
    pub account: Option<BankAccountRecord>,
}

#[derive(Clone, Debug)]
pub struct NewPayment {
    pub payer_id: i64,
    pub account_id: i64,
    pub case_number: CaseNumber,
    pub obligor_id: ObligorId,
    pub amount: Money,
    /// WEB or PHONE.
    pub channel: &'static str,
    pub accepted_on: NaiveDate,
    pub accepted_at: String,
    pub idempotency_key: String,
    pub request_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payment_id: i64,
    pub payer_id: i64,
    pub case_number: String,
    pub obligor_id: String,
    pub amount: Money,
    pub channel: String,
    pub accepted_on: NaiveDate,
    pub request_sha256: String,
    pub collection_id: i64,
    pub trace_number: String,
    pub return_code: Option<String>,
}

/// What taking a payment reads before it writes anything, read at once (one statement on
/// PostgreSQL, one read transaction on SQLite): the payment its idempotency key already
/// took, if any; its payer, with their active bank account; the obligor owning the case it
/// names, and that obligor's orders (each with its withholding employer's FEIN), which the
/// receipt states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentContext {
    pub first: Option<PaymentRecord>,
    pub payer: Option<PayerRecord>,
    pub case_owner: Option<ObligorId>,
    pub owner_orders: Vec<(Order, Option<String>)>,
}

/// Divides a reversal among the rows of its pool: `domain::distribution::reversal_entries`.
pub type ReversalPlanner = dyn Fn(&[PoolRow], Money) -> Vec<Allocation> + Send + Sync;

#[async_trait]
pub trait PaymentStore: Send + Sync {
    // Each method that changes something writes `audit` in the same transaction.
    async fn create_payer(&self, payer: NewPayer, account: NewBankAccount, audit: &AuditEntry) -> StoreResult<i64>;
    async fn payer(&self, payer_id: i64) -> StoreResult<Option<PayerRecord>>;
    /// Adds a bank account; false (nothing written) when the payer already has one.
    async fn add_bank_account(&self, payer_id: i64, account: NewBankAccount, audit: &AuditEntry) -> StoreResult<bool>;
    /// Replaces the payer's bank account: the old one is kept, inactive, for the record.
    async fn replace_bank_account(&self, payer_id: i64, account: NewBankAccount, audit: &AuditEntry) -> StoreResult<()>;
    /// Records the prenote's result on the payer's current account: `None` for confirmed,
    /// `Some(code)` for returned.
    async fn record_prenote(&self, payer_id: i64, returned: Option<String>, audit: &AuditEntry) -> StoreResult<()>;
    /// The orders of an obligor, each with the FEIN of the employer holding its income
    /// withholding order, if any.
    async fn orders_of_obligor(&self, obligor_id: &ObligorId) -> StoreResult<Vec<(Order, Option<String>)>>;
    async fn payment_by_key(&self, payer_id: i64, idempotency_key: &str) -> StoreResult<Option<PaymentRecord>>;
    /// [`PaymentContext`]: the key's payment, the payer, the case's owner (`None` without a
    /// case number) and the owner's orders, in one read.
    async fn payment_context(&self, payer_id: i64, idempotency_key: &str, case_number: Option<&CaseNumber>) -> StoreResult<PaymentContext>;
    /// Records a payment and its ONLINE collection in one transaction. `Conflict` when the
    /// payer's idempotency key was used meanwhile.
    async fn create_payment(&self, payment: NewPayment, audit: &AuditEntry) -> StoreResult<PaymentRecord>;
    async fn payment(&self, payment_id: i64) -> StoreResult<Option<PaymentRecord>>;
    /// The newest payment whose ACH debit carries `trace_number`: a number is issued again
    /// 10,000,000 numbers later, far beyond the window in which a return quotes it.
    async fn payment_by_trace(&self, trace_number: &str) -> StoreResult<Option<PaymentRecord>>;
    /// Records an ACH return of a payment and reverses it, in one transaction, with its audit
    /// row when given (a return recorded by a call of its own, or one entry of a return file,
    /// audited as that payment's return within the file's call).
    async fn return_payment(
        &self,
        payment_id: i64,
        code: &str,
        returned_at: &str,
        makes_account_unusable: bool,
        planner: &ReversalPlanner,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<ReturnOutcome>;
}
