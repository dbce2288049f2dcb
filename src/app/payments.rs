//! Voluntary online payments (`online-payments.md`): payer accounts, bank account
//! validation, payments that join payroll money in distribution, and ACH returns.
//!
//! An online payment never stops payroll deduction: it changes no income withholding order,
//! and the answer says so whenever the obligor has one.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::distribution::reversal_entries;
use crate::domain::payment::{
    account_state, AccountNumber, AccountState, AccountType, Email, PrenoteResult, ReturnCode, RoutingNumber, Telephone,
};
use crate::domain::{CaseNumber, Money, ObligorId, ProblemCode, Ssn, YearMonth};
use crate::storage::payment::{NewBankAccount, NewPayer, NewPayment, PayerRecord, PaymentRecord, ReturnOutcome};
use crate::storage::{AuditEntry, StoreError};

/// A new bank account, as the payer gives it.
#[derive(Clone, Debug)]
pub struct BankAccountDetails {
    pub routing_number: RoutingNumber,
    pub account_number: AccountNumber,
    pub account_type: AccountType,
}

/// Everything registration needs.
#[derive(Clone, Debug)]
pub struct PayerDetails {
    pub name: String,
    pub address: String,
    pub ssn: Ssn,
    pub telephone: Telephone,
    pub email: Email,
    pub case_number: CaseNumber,
    pub account: BankAccountDetails,
}

/// A bank account as shown: routing number, last 4 digits, and whether it can pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub routing_number: String,
    pub account_last4: String,
    pub account_type: String,
    pub added_on: NaiveDate,
    pub state: AccountState,
}

/// A payer as shown: personal data masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayerView {
    pub payer_id: i64,
    pub name: String,
    pub address: String,
    pub ssn_last4: String,
    pub telephone: String,
    pub email: String,
    pub case_number: String,
    pub account: Option<AccountView>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Web,
    Phone,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "WEB",
            Channel::Phone => "PHONE",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PaymentRequest {
    pub payer_id: i64,
    /// Required: a payment without a known case number is not processed.
    pub case_number: Option<CaseNumber>,
    pub amount: Money,
    pub channel: Channel,
    pub idempotency_key: String,
}

/// A payment as the application reports it (none of its bookkeeping: the request's hash,
/// its collection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentView {
    pub payment_id: i64,
    pub case_number: String,
    pub amount: Money,
    /// WEB or PHONE.
    pub channel: String,
    pub accepted_on: NaiveDate,
    pub trace_number: String,
    /// The bank's return code, once it returned the payment.
    pub return_code: Option<String>,
}

impl From<PaymentRecord> for PaymentView {
    fn from(payment: PaymentRecord) -> PaymentView {
        PaymentView {
            payment_id: payment.payment_id,
            case_number: payment.case_number,
            amount: payment.amount,
            channel: payment.channel,
            accepted_on: payment.accepted_on,
            trace_number: payment.trace_number,
            return_code: payment.return_code,
        }
    }
}

/// The answer to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub payment: PaymentView,
    /// The obligor's monthly current support, when the payment is below it.
    pub below_monthly_support: Option<Money>,
    /// Whether an income withholding order exists for the obligor (it continues).
    pub payroll_deduction_continues: bool,
    /// Sentences for the payer.
    pub notices: Vec<String>,
    /// True when this is the first answer again, for a retried request.
    pub replayed: bool,
}

/// What recording a return did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnResult {
    pub payment_id: i64,
    pub code: ReturnCode,
    pub outcome: ReturnOutcome,
    pub account_unusable: bool,
}

impl App {
    pub async fn register_payer(&self, caller: &Caller, details: PayerDetails) -> Result<PayerView, AppError> {
        let audit = self.authorize(caller, Action::RegisterPayer, format!("case:{}", details.case_number)).await?;
        let result = self.register_payer_audited(details, &audit).await;
        self.audited_commit(audit, result).await
    }

    async fn register_payer_audited(&self, details: PayerDetails, audit: &AuditEntry) -> Result<Result<PayerView, AppError>, AppError> {
        check_text("name", &details.name, 1, 100)?;
        check_text("address", &details.address, 1, 200)?;
        self.known_case(&details.case_number, "the case number is not known to the agency").await?;
        let payer = NewPayer {
            name: details.name.trim().to_owned(),
            address: details.address.trim().to_owned(),
            ssn_hmac: self.pii.ssn_hmac(&details.ssn),
            ssn_last4: details.ssn.last4().to_owned(),
            telephone: details.telephone.as_str().to_owned(),
            email: details.email.as_str().to_owned(),
            case_number: details.case_number,
            created_at: self.clock.now_rfc3339(),
        };
        let payer_id = self.store.create_payer(payer, self.new_account(&details.account), audit).await?;
        tracing::info!(payer_id, "payer registered");
        Ok(self.payer_view(payer_id).await)
    }

    /// A payer, masked, with the bank account's validation state.
    pub async fn payer(&self, caller: &Caller, payer_id: i64) -> Result<PayerView, AppError> {
        let audit = self.authorize(caller, Action::GetPayer, format!("payer:{payer_id}")).await?;
        let result = self.payer_view(payer_id).await;
        self.audited_read(audit, result).await
    }

    async fn payer_view(&self, payer_id: i64) -> Result<PayerView, AppError> {
        let record = self.store.payer(payer_id).await?.ok_or_else(|| AppError::NotFound(format!("no payer {payer_id}")))?;
        Ok(self.view(record))
    }

    /// Adding a second bank account is refused: a payer has exactly one (replace it instead).
    pub async fn add_bank_account(&self, caller: &Caller, payer_id: i64, account: BankAccountDetails) -> Result<PayerView, AppError> {
        let audit = self.authorize(caller, Action::AddBankAccount, format!("payer:{payer_id}")).await?;
        let result = self.add_bank_account_audited(payer_id, account, &audit).await;
        self.audited_commit(audit, result).await
    }

    async fn add_bank_account_audited(
        &self,
        payer_id: i64,
        account: BankAccountDetails,
        audit: &AuditEntry,
    ) -> Result<Result<PayerView, AppError>, AppError> {
        self.payer_view(payer_id).await?;
        if !self.store.add_bank_account(payer_id, self.new_account(&account), audit).await? {
            return Err(AppError::precondition(
                ProblemCode::BankAccountExists,
                format!("payer:{payer_id}"),
                "a payer has exactly one bank account: replace it instead of adding a second",
            ));
        }
        Ok(self.payer_view(payer_id).await)
    }

    /// Replaces the payer's bank account; the new one is validated again.
    pub async fn replace_bank_account(&self, caller: &Caller, payer_id: i64, account: BankAccountDetails) -> Result<PayerView, AppError> {
        let audit = self.authorize(caller, Action::ReplaceBankAccount, format!("payer:{payer_id}")).await?;
        let result = async {
            self.payer_view(payer_id).await?;
            self.store.replace_bank_account(payer_id, self.new_account(&account), &audit).await?;
            tracing::info!(payer_id, "bank account replaced");
            Ok(self.payer_view(payer_id).await)
        }
        .await;
        self.audited_commit(audit, result).await
    }

    /// The back office records the prenote's result early: confirmed (`None`) or returned.
    pub async fn record_prenote(&self, caller: &Caller, payer_id: i64, returned: Option<ReturnCode>) -> Result<PayerView, AppError> {
        let action = if returned.is_some() { Action::ReturnPrenote } else { Action::ConfirmBankAccount };
        let audit = self.authorize(caller, action, format!("payer:{payer_id}")).await?;
        let result = async {
            let payer = self.payer_view(payer_id).await?;
            if payer.account.is_none() {
                return Err(AppError::precondition(
                    ProblemCode::NoBankAccount,
                    format!("payer:{payer_id}"),
                    format!("payer {payer_id} has no bank account"),
                ));
            }
            self.store.record_prenote(payer_id, returned.map(|c| c.to_string()), &audit).await?;
            Ok(self.payer_view(payer_id).await)
        }
        .await;
        self.audited_commit(audit, result).await
    }

    /// Takes a payment by ACH debit of the payer's validated bank account. A retried request
    /// (same idempotency key) returns the first answer and takes no money twice.
    pub async fn pay(&self, caller: &Caller, request: PaymentRequest) -> Result<PaymentReceipt, AppError> {
        let audit = self.authorize(caller, Action::SubmitPayment, format!("payer:{}", request.payer_id)).await?;
        match self.pay_audited(request, &audit).await {
            Ok(receipt) if receipt.replayed => {
                self.audit_outcome(audit, "REPLAYED").await?;
                Ok(receipt)
            }
            // Written with the payment, in its transaction. The receipt is made from what was
            // read before the write: nothing read after the commit can fail the call.
            Ok(receipt) => Ok(receipt),
            Err(error) => {
                self.record_failure(audit, &error).await?;
                Err(error)
            }
        }
    }

    /// Takes the payment, or answers the one its key already took: `Err` when nothing was
    /// recorded. What it checks and what the receipt states are read at once, before the
    /// write (`PaymentStore::payment_context`).
    async fn pay_audited(&self, request: PaymentRequest, audit: &AuditEntry) -> Result<PaymentReceipt, AppError> {
        check_text("idempotency_key", &request.idempotency_key, 1, 64)?;
        let fingerprint = fingerprint(&request);
        let context = self.store.payment_context(request.payer_id, &request.idempotency_key, request.case_number.as_ref()).await?;
        if let Some(first) = context.first {
            return self.replay_payment(first, &fingerprint).await;
        }
        let owner_orders = context.owner_orders;
        let new = match self.new_payment(&request, &fingerprint, context.payer, context.case_owner) {
            Ok(new) => new,
            Err(refused) => {
                // The key was looked up on a read connection, beside the writer: a retry can
                // miss its first attempt still being committed, and be refused by a check that
                // attempt passed (its account replaced since, say). If the key's payment is
                // there now, the retry is answered with it.
                return match self.store.payment_by_key(request.payer_id, &request.idempotency_key).await? {
                    Some(first) => self.replay_payment(first, &fingerprint).await,
                    None => Err(refused),
                };
            }
        };
        let payment = match super::retry::retrying_conflicts(&self.metrics, "payment", || self.store.create_payment(new.clone(), audit)).await {
            Ok(payment) => payment,
            Err(StoreError::Conflict(_)) => {
                let first = self.store.payment_by_key(request.payer_id, &request.idempotency_key).await?;
                let first = first.ok_or_else(|| AppError::Internal("idempotency conflict without a payment".into()))?;
                return self.replay_payment(first, &fingerprint).await;
            }
            Err(error) => return Err(error.into()),
        };
        tracing::info!(payment_id = payment.payment_id, amount = %payment.amount, "online payment accepted");
        // The payment's obligor is its case's owner, whose orders the context read.
        Ok(receipt_of(payment, &owner_orders, false))
    }

    /// The payment `request` asks for, once its payer, case (owned by `case_owner`), amount
    /// and bank account allow it.
    fn new_payment(
        &self,
        request: &PaymentRequest,
        fingerprint: &str,
        payer: Option<PayerRecord>,
        case_owner: Option<ObligorId>,
    ) -> Result<NewPayment, AppError> {
        let payer = payer.ok_or_else(|| AppError::NotFound(format!("no payer {}", request.payer_id)))?;
        let Some(case_number) = request.case_number.clone() else {
            return Err(AppError::invalid(
                "case_number",
                "a payment must carry a case number: it was not processed and no money was taken",
            ));
        };
        let obligor_id = case_owner.ok_or_else(|| {
            AppError::invalid("case_number", "the case number is not known: the payment was not processed and no money was taken")
        })?;
        if !request.amount.is_positive() || request.amount > Money::MAX_LINE_AMOUNT {
            return Err(AppError::invalid("amount", "the amount must be above 0.00 and at most 99999999.99"));
        }
        let subject = format!("payer:{}", payer.payer_id);
        let no_account = || AppError::precondition(ProblemCode::NoBankAccount, subject.clone(), "the payer has no bank account");
        let account = payer.account.as_ref().ok_or_else(no_account)?;
        let today = self.today();
        match self.account_view(account).state {
            AccountState::Usable => {}
            AccountState::Pending { usable_from } => {
                return Err(AppError::precondition(
                    ProblemCode::BankAccountPending,
                    subject,
                    format!("the bank account is still being validated: it can pay from {usable_from}; no money was taken"),
                ))
            }
            AccountState::Unusable { code } => {
                return Err(AppError::precondition(
                    ProblemCode::BankAccountUnusable,
                    subject,
                    format!("the bank returned this account ({code}): replace it and let it be validated again; no money was taken"),
                ))
            }
        }
        Ok(NewPayment {
            payer_id: payer.payer_id,
            account_id: account.account_id,
            case_number,
            obligor_id,
            amount: request.amount,
            channel: request.channel.as_str(),
            accepted_on: today,
            accepted_at: self.clock.now_rfc3339(),
            idempotency_key: request.idempotency_key.clone(),
            request_sha256: fingerprint.to_owned(),
        })
    }

    async fn replay_payment(&self, first: PaymentRecord, fingerprint: &str) -> Result<PaymentReceipt, AppError> {
        if first.request_sha256 != fingerprint {
            return Err(AppError::already_exists(
                ProblemCode::IdempotencyKeyReused,
                format!("payment:{}", first.payment_id),
                "this idempotency key was used for a different payment",
            ));
        }
        self.receipt(first, true).await
    }

    async fn receipt(&self, payment: PaymentRecord, replayed: bool) -> Result<PaymentReceipt, AppError> {
        let obligor = ObligorId::parse(&payment.obligor_id).map_err(|e| AppError::Internal(e.to_string()))?;
        let orders = self.store.orders_of_obligor(&obligor).await?;
        Ok(receipt_of(payment, &orders, replayed))
    }

    /// Records an ACH return of a payment and reverses it (`distribution.md`, Reversals).
    pub async fn record_return(&self, caller: &Caller, payment_id: i64, code: ReturnCode) -> Result<ReturnResult, AppError> {
        let audit = self.authorize(caller, Action::RecordReturn, format!("payment:{payment_id}")).await?;
        let result = self.return_payment(payment_id, code, Some(&audit)).await;
        self.audited_write(audit, result).await
    }

    /// Returns a payment; `audit` is written in the return's transaction when given.
    async fn return_payment(&self, payment_id: i64, code: ReturnCode, audit: Option<&AuditEntry>) -> Result<ReturnResult, AppError> {
        self.store.payment(payment_id).await?.ok_or_else(|| AppError::NotFound(format!("no payment {payment_id}")))?;
        let unusable = code.makes_account_unusable();
        let (code_text, returned_at) = (code.to_string(), self.clock.now_rfc3339());
        let outcome = super::retry::retrying_conflicts(&self.metrics, "return", || {
            self.store.return_payment(payment_id, &code_text, &returned_at, unusable, &|rows, amount| reversal_entries(rows, amount), audit)
        })
        .await?;
        if let ReturnOutcome::AlreadyReturned(recorded) = &outcome {
            // The answer states the return on record, not the code of this second attempt.
            // (A code recorded before the list of NACHA codes was enforced stays as it was.)
            let recorded = ReturnCode::stored(recorded);
            tracing::info!(payment_id, %recorded, attempted = %code, "payment already returned");
            return Ok(ReturnResult { payment_id, code: recorded, outcome, account_unusable: recorded.makes_account_unusable() });
        }
        tracing::info!(payment_id, %code, "payment returned");
        Ok(ReturnResult { payment_id, code, outcome, account_unusable: unusable })
    }

    /// Records the return of `payment`, named by one entry of a return file: its own audit row
    /// (the file's call, this payment) commits with it.
    async fn return_traced(&self, payment: &PaymentRecord, code: ReturnCode, file_audit: &AuditEntry) -> Result<ReturnResult, AppError> {
        let audit = AuditEntry { object: format!("payment:{}", payment.payment_id), ..file_audit.clone() };
        self.return_payment(payment.payment_id, code, Some(&audit)).await
    }

    async fn known_case(&self, case_number: &CaseNumber, message: &str) -> Result<ObligorId, AppError> {
        self.store.case_owner(case_number).await?.ok_or_else(|| AppError::invalid("case_number", message))
    }

    fn new_account(&self, details: &BankAccountDetails) -> NewBankAccount {
        NewBankAccount {
            routing_number: details.routing_number.as_str().to_owned(),
            account_cipher: self.pii.encrypt_account(&details.account_number),
            account_last4: details.account_number.last4().to_owned(),
            account_type: details.account_type.as_str(),
            added_on: self.today(),
        }
    }

    fn account_view(&self, account: &crate::storage::payment::BankAccountRecord) -> AccountView {
        let prenote = match (account.prenote_result.as_deref(), account.prenote_return_code.as_deref()) {
            (Some("CONFIRMED"), _) => Some(PrenoteResult::Confirmed),
            (Some("RETURNED"), Some(code)) => Some(PrenoteResult::Returned(ReturnCode::stored(code))),
            _ => None,
        };
        let unusable = account.unusable_code.as_deref().map(ReturnCode::stored);
        AccountView {
            routing_number: account.routing_number.clone(),
            account_last4: account.account_last4.clone(),
            account_type: account.account_type.clone(),
            added_on: account.added_on,
            state: account_state(account.added_on, prenote, unusable, self.today()),
        }
    }

    fn view(&self, record: PayerRecord) -> PayerView {
        PayerView {
            account: record.account.as_ref().map(|a| self.account_view(a)),
            payer_id: record.payer_id,
            name: record.name,
            address: record.address,
            ssn_last4: record.ssn_last4,
            telephone: record.telephone,
            email: record.email,
            case_number: record.case_number,
        }
    }
}

/// What makes a payment request the same request: its payer, case, amount and channel.
fn fingerprint(request: &PaymentRequest) -> String {
    let case = request.case_number.as_ref().map(|c| c.as_str()).unwrap_or("");
    let text = format!("{}|{case}|{}|{}", request.payer_id, request.amount.cents(), request.channel.as_str());
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn check_text(field: &'static str, text: &str, min: usize, max: usize) -> Result<(), AppError> {
    let length = text.trim().chars().count();
    if (min..=max).contains(&length) && !text.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AppError::invalid(field, format!("{field} is {min} to {max} printable characters")))
    }
}

/// What became of one entry of an ACH return file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedReturn {
    pub record: u64,
    pub original_trace: String,
    pub code: String,
    /// The payment returned, when the trace number names one (for AMOUNT_MISMATCH, the
    /// payment it names, which was not returned).
    pub payment_id: Option<i64>,
    /// REVERSED, CANCELLED (not yet distributed), ALREADY_RETURNED, UNKNOWN_TRACE,
    /// AMOUNT_MISMATCH or INVALID_CODE.
    pub outcome: &'static str,
}

impl App {
    /// Imports the bank's ACH return file: every return is recorded, each in its own
    /// transaction, so a file imported twice changes nothing the second time.
    pub async fn import_returns(&self, caller: &Caller, upload: impl super::UploadStream) -> Result<Vec<ImportedReturn>, AppError> {
        let audit = self.authorize(caller, Action::ImportReturns, "return-file").await?;
        let result = self.import_returns_audited(upload, &audit).await;
        let audit = match &result {
            Ok(returns) => AuditEntry { object: format!("return-file:{} entries", returns.len()), ..audit },
            Err(_) => audit,
        };
        self.audited_read(audit, result).await
    }

    /// Each return recorded writes its audit row in its own transaction; the caller writes
    /// the file's.
    async fn import_returns_audited(&self, upload: impl super::UploadStream, audit: &AuditEntry) -> Result<Vec<ImportedReturn>, AppError> {
        let max_entries = self.limits.file.max_lines;
        let read = move |input| crate::formats::ach_returns::read_returns(input, max_entries);
        let parsed = super::upload::parse_upload(upload, self.limits, read).await?;
        let entries = parsed.map_err(|e| AppError::invalid("file", format!("{} at {}: {}", e.code, e.position, e.message)))?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut result = ImportedReturn {
                record: entry.record,
                original_trace: entry.original_trace.clone(),
                code: entry.code.clone(),
                payment_id: None,
                outcome: "",
            };
            let Ok(code) = ReturnCode::parse(&entry.code) else {
                result.outcome = "INVALID_CODE";
                results.push(result);
                continue;
            };
            // A trace number comes round after 10,000,000 numbers, so it names the newest
            // payment that carries it; a return is of the amount debited, so one of another
            // amount is not this payment's and is reported instead of reversing it.
            let Some(payment) = self.store.payment_by_trace(&entry.original_trace).await? else {
                result.outcome = "UNKNOWN_TRACE";
                results.push(result);
                continue;
            };
            if u64::try_from(payment.amount.cents()).ok() != Some(entry.amount_cents) {
                tracing::warn!(
                    payment_id = payment.payment_id,
                    record = entry.record,
                    "a return's amount is not its trace number's payment's: not recorded"
                );
                result.payment_id = Some(payment.payment_id);
                result.outcome = "AMOUNT_MISMATCH";
                results.push(result);
                continue;
            }
            result.outcome = match self.return_traced(&payment, code, audit).await {
                Ok(returned) => {
                    result.payment_id = Some(returned.payment_id);
                    match returned.outcome {
                        ReturnOutcome::Reversed { .. } => "REVERSED",
                        ReturnOutcome::CancelledBeforeDistribution => "CANCELLED",
                        ReturnOutcome::AlreadyReturned(_) => "ALREADY_RETURNED",
                    }
                }
                Err(AppError::NotFound(_)) => "UNKNOWN_TRACE",
                Err(error) => return Err(error),
            };
            results.push(result);
        }
        Ok(results)
    }
}

/// The receipt of `payment`, whose obligor has `orders`: what it says of the month's current
/// support and of payroll deduction.
fn receipt_of(payment: PaymentRecord, orders: &[(crate::domain::distribution::Order, Option<String>)], replayed: bool) -> PaymentReceipt {
    let month = YearMonth::of(payment.accepted_on);
    let monthly: Money = orders.iter().filter(|(o, _)| o.is_due(month)).map(|(o, _)| o.monthly_amount).sum();
    let withholding = orders.iter().any(|(_, fein)| fein.is_some());
    let mut notices =
        vec![format!("Payment of {} accepted for case {}, effective {}.", payment.amount, payment.case_number, payment.accepted_on)];
    let below = (payment.amount < monthly).then_some(monthly);
    if let Some(monthly) = below {
        notices.push(format!(
            "This is below the monthly current support of {monthly}: paying the full amount each month avoids delinquency."
        ));
    }
    if withholding {
        notices.push(
            "Payroll deduction continues: an online payment does not change, end or suspend the income withholding order.".to_owned(),
        );
    }
    PaymentReceipt { payment: payment.into(), below_monthly_support: below, payroll_deduction_continues: withholding, notices, replayed }
}
