//! The payment service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status, Streaming};

use super::proto;
use super::convert;
use super::services::{caller_of, chunk_or_end, parts, understood};
use crate::app::UploadPart;
use crate::app::payments::{
    AccountView, BankAccountDetails, Channel, ImportedReturn, PayerDetails, PayerView, PaymentReceipt, PaymentRequest, ReturnResult,
};
use crate::app::{App, AppError};
use crate::domain::access::Action;
use crate::domain::payment::{AccountNumber, AccountState, AccountType, Email, ReturnCode, RoutingNumber, Telephone};
use crate::domain::{CaseNumber, Ssn};
use crate::domain::payment::ReturnOutcome;

pub struct Payments(pub App);

fn invalid(field: &'static str) -> impl Fn(crate::domain::payment::PaymentDetailError) -> AppError {
    move |error| AppError::invalid(field, error.to_string())
}

fn bank_account(account: Option<proto::BankAccountInput>) -> Result<BankAccountDetails, AppError> {
    let account = account.ok_or_else(|| AppError::invalid("bank_account", "a bank account is required"))?;
    let routing_number = RoutingNumber::parse(&account.routing_number).map_err(invalid("bank_account.routing_number"));
    let account_number = AccountNumber::parse(&account.account_number).map_err(invalid("bank_account.account_number"));
    let account_type = match proto::AccountType::try_from(account.account_type) {
        Ok(proto::AccountType::Checking) => Ok(AccountType::Checking),
        Ok(proto::AccountType::Savings) => Ok(AccountType::Savings),
        _ => Err(AppError::invalid("bank_account.account_type", "the account type is ACCOUNT_TYPE_CHECKING or ACCOUNT_TYPE_SAVINGS")),
    };
    match (routing_number, account_number, account_type) {
        (Ok(routing_number), Ok(account_number), Ok(account_type)) => Ok(BankAccountDetails { routing_number, account_number, account_type }),
        (routing, number, kind) => Err(AppError::every_field([routing.err(), number.err(), kind.err()])),
    }
}


fn return_code(text: &str) -> Result<ReturnCode, AppError> {
    ReturnCode::parse(text).map_err(invalid("return_code"))
}

fn account_status(view: AccountView) -> proto::BankAccountStatus {
    let (state, usable_from, code) = match view.state {
        AccountState::Pending { usable_from } => (proto::AccountState::Pending, Some(usable_from.to_string()), None),
        AccountState::Usable => (proto::AccountState::Usable, None, None),
        AccountState::Unusable { code } => (proto::AccountState::Unusable, None, Some(code.to_string())),
    };
    let account_type = match view.account_type.as_str() {
        "CHECKING" => proto::AccountType::Checking,
        "SAVINGS" => proto::AccountType::Savings,
        _ => proto::AccountType::Unspecified,
    };
    proto::BankAccountStatus {
        bank_account: Some(proto::BankAccount {
            routing_number: view.routing_number,
            account_number_last4: view.account_last4,
            account_type: account_type as i32,
        }),
        added_on: view.added_on.to_string(),
        state: state as i32,
        usable_from,
        return_code: code,
    }
}

fn payer(view: PayerView) -> proto::Payer {
    proto::Payer {
        payer_id: view.payer_id,
        name: view.name,
        address: view.address,
        ssn_last4: view.ssn_last4,
        telephone: view.telephone,
        email: view.email,
        case_number: view.case_number,
        bank_account: view.account.map(account_status),
    }
}

fn receipt(receipt: PaymentReceipt) -> proto::PaymentReceipt {
    let payment = receipt.payment;
    proto::PaymentReceipt {
        payment_id: payment.payment_id,
        status: if payment.return_code.is_some() { proto::PaymentStatus::Returned } else { proto::PaymentStatus::Accepted } as i32,
        amount: payment.amount.to_string(),
        case_number: payment.case_number,
        effective_date: payment.accepted_on.to_string(),
        channel: if payment.channel == "PHONE" { proto::PaymentChannel::Phone } else { proto::PaymentChannel::Web } as i32,
        below_monthly_support: receipt.below_monthly_support.map(|m| m.to_string()),
        payroll_deduction_continues: receipt.payroll_deduction_continues,
        notices: receipt.notices,
        replayed: receipt.replayed,
        trace_number: payment.trace_number,
    }
}

fn return_result(result: ReturnResult) -> proto::RecordReturnResponse {
    let (outcome, run_id, entries) = match result.outcome {
        ReturnOutcome::Reversed { run_id, entries } => (proto::ReturnOutcome::Reversed, Some(run_id.to_string()), entries),
        ReturnOutcome::CancelledBeforeDistribution => (proto::ReturnOutcome::Cancelled, None, Vec::new()),
        ReturnOutcome::AlreadyReturned(_) => (proto::ReturnOutcome::AlreadyReturned, None, Vec::new()),
    };
    proto::RecordReturnResponse {
        payment_id: result.payment_id,
        return_code: result.code.to_string(),
        outcome: outcome as i32,
        reversal_run_id: run_id,
        entries: entries
            .into_iter()
            .map(|e| proto::ReversalEntry {
                order_id: e.order_id.map(|o| o.to_string()).unwrap_or_default(),
                bucket: convert::bucket(e.bucket) as i32,
                month: e.month.map(|m| m.to_string()).unwrap_or_default(),
                amount: e.amount.to_string(),
            })
            .collect(),
        account_unusable: result.account_unusable,
    }
}

fn imported(entry: ImportedReturn) -> proto::ImportedReturn {
    proto::ImportedReturn {
        record: entry.record,
        original_trace: entry.original_trace,
        return_code: entry.code,
        payment_id: entry.payment_id,
        outcome: match entry.outcome {
            "REVERSED" => proto::ReturnOutcome::Reversed,
            "CANCELLED" => proto::ReturnOutcome::Cancelled,
            "ALREADY_RETURNED" => proto::ReturnOutcome::AlreadyReturned,
            "UNKNOWN_TRACE" => proto::ReturnOutcome::UnknownTrace,
            "INVALID_CODE" => proto::ReturnOutcome::InvalidCode,
            "AMOUNT_MISMATCH" => proto::ReturnOutcome::AmountMismatch,
            _ => proto::ReturnOutcome::Unspecified,
        } as i32,
    }
}

/// A registration's fields; every wrong one is reported at once.
fn payer_details(request: proto::RegisterPayerRequest) -> Result<PayerDetails, AppError> {
    let required = |field: &'static str, text: &str| {
        if text.trim().is_empty() {
            Err(AppError::invalid(field, format!("`{field}` is required")))
        } else {
            Ok(())
        }
    };
    let name = required("name", &request.name);
    let address = required("address", &request.address);
    let ssn = Ssn::parse(&request.ssn).map_err(|e| AppError::invalid("ssn", e.to_string()));
    let telephone = Telephone::parse(&request.telephone).map_err(invalid("telephone"));
    let email = Email::parse(&request.email).map_err(invalid("email"));
    let case_number = CaseNumber::parse(&request.case_number).map_err(|e| AppError::invalid("case_number", e.to_string()));
    let account = bank_account(request.bank_account);
    match (name, address, ssn, telephone, email, case_number, account) {
        (Ok(()), Ok(()), Ok(ssn), Ok(telephone), Ok(email), Ok(case_number), Ok(account)) => {
            Ok(PayerDetails { name: request.name, address: request.address, ssn, telephone, email, case_number, account })
        }
        (name, address, ssn, telephone, email, case_number, account) => Err(AppError::every_field([
            name.err(),
            address.err(),
            ssn.err(),
            telephone.err(),
            email.err(),
            case_number.err(),
            account.err(),
        ])),
    }
}

fn payment_request(request: proto::SubmitPaymentRequest) -> Result<PaymentRequest, AppError> {
    let case_number = match request.case_number.trim() {
        "" => None,
        text => Some(CaseNumber::parse(text).map_err(|e| AppError::invalid("case_number", format!("{e}: the payment was not processed")))?),
    };
    let channel = match proto::PaymentChannel::try_from(request.channel) {
        Ok(proto::PaymentChannel::Phone) => Channel::Phone,
        Ok(proto::PaymentChannel::Web | proto::PaymentChannel::Unspecified) => Channel::Web,
        Err(_) => return Err(AppError::invalid("channel", "the channel is WEB or PHONE")),
    };
    Ok(PaymentRequest {
        payer_id: request.payer_id,
        case_number,
        amount: super::convert::amount("amount", &request.amount)?,
        channel,
        idempotency_key: request.idempotency_key,
    })
}

#[tonic::async_trait]
impl proto::payment_service_server::PaymentService for Payments {
    async fn register_payer(&self, request: Request<proto::RegisterPayerRequest>) -> Result<Response<proto::RegisterPayerResponse>, Status> {
        let caller = caller_of(&request)?;
        let details = understood(&self.0, &caller, Action::RegisterPayer, payer_details(request.into_inner())).await?;
        let payer = payer(self.0.register_payer(&caller, details).await?);
        Ok(Response::new(proto::RegisterPayerResponse { payer: Some(payer) }))
    }

    async fn get_payer(&self, request: Request<proto::GetPayerRequest>) -> Result<Response<proto::GetPayerResponse>, Status> {
        let caller = caller_of(&request)?;
        let payer = payer(self.0.payer(&caller, request.into_inner().payer_id).await?);
        Ok(Response::new(proto::GetPayerResponse { payer: Some(payer) }))
    }

    async fn add_bank_account(&self, request: Request<proto::AddBankAccountRequest>) -> Result<Response<proto::AddBankAccountResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let account = understood(&self.0, &caller, Action::AddBankAccount, bank_account(request.bank_account)).await?;
        let payer = payer(self.0.add_bank_account(&caller, request.payer_id, account).await?);
        Ok(Response::new(proto::AddBankAccountResponse { payer: Some(payer) }))
    }

    async fn replace_bank_account(
        &self,
        request: Request<proto::ReplaceBankAccountRequest>,
    ) -> Result<Response<proto::ReplaceBankAccountResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let account = understood(&self.0, &caller, Action::ReplaceBankAccount, bank_account(request.bank_account)).await?;
        let payer = payer(self.0.replace_bank_account(&caller, request.payer_id, account).await?);
        Ok(Response::new(proto::ReplaceBankAccountResponse { payer: Some(payer) }))
    }

    async fn confirm_bank_account(
        &self,
        request: Request<proto::ConfirmBankAccountRequest>,
    ) -> Result<Response<proto::ConfirmBankAccountResponse>, Status> {
        let caller = caller_of(&request)?;
        let payer = payer(self.0.record_prenote(&caller, request.into_inner().payer_id, None).await?);
        Ok(Response::new(proto::ConfirmBankAccountResponse { payer: Some(payer) }))
    }

    async fn return_prenote(&self, request: Request<proto::ReturnPrenoteRequest>) -> Result<Response<proto::ReturnPrenoteResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let code = understood(&self.0, &caller, Action::ReturnPrenote, return_code(&request.return_code)).await?;
        let payer = payer(self.0.record_prenote(&caller, request.payer_id, Some(code)).await?);
        Ok(Response::new(proto::ReturnPrenoteResponse { payer: Some(payer) }))
    }

    async fn submit_payment(&self, request: Request<proto::SubmitPaymentRequest>) -> Result<Response<proto::SubmitPaymentResponse>, Status> {
        let caller = caller_of(&request)?;
        let payment = understood(&self.0, &caller, Action::SubmitPayment, payment_request(request.into_inner())).await?;
        let receipt = receipt(self.0.pay(&caller, payment).await?);
        Ok(Response::new(proto::SubmitPaymentResponse { receipt: Some(receipt) }))
    }

    async fn record_return(&self, request: Request<proto::RecordReturnRequest>) -> Result<Response<proto::RecordReturnResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let code = understood(&self.0, &caller, Action::RecordReturn, return_code(&request.return_code)).await?;
        Ok(Response::new(return_result(self.0.record_return(&caller, request.payment_id, code).await?)))
    }

    async fn import_returns(
        &self,
        request: Request<Streaming<proto::ImportReturnsRequest>>,
    ) -> Result<Response<proto::ImportReturnsResponse>, Status> {
        let caller = caller_of(&request)?;
        let upload = parts(request.into_inner(), chunk_or_end!(import_returns_request));
        let returns = self.0.import_returns(&caller, upload).await?;
        Ok(Response::new(proto::ImportReturnsResponse { returns: returns.into_iter().map(imported).collect() }))
    }
}
