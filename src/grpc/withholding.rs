//! The withholding service: converts, calls one `App` method, converts back. A payroll run's
//! employees are answered in the order sent, a few computed at once.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::proto;
use super::services::{caller_of, understood};
use crate::app::{App, AppError, FieldViolation, OrderAnswer, WithholdingAnswer, WithholdingRequest};
use crate::domain::access::Action;
use crate::domain::month::parse_iso_date;
use crate::domain::withholding::{OrderTerms, PayFrequency, Premium, MAX_AMOUNT, MAX_ORDERS};
use crate::domain::{CaseNumber, Money, Ssn};

pub struct Withholdings(pub App);

/// Employees of one payroll run computed at once; answers still leave in the order sent.
const PAYROLL_CONCURRENCY: usize = 8;

/// The longest employee reference a payroll run answers back.
const MAX_REFERENCE_CHARS: usize = 64;

/// The longest reference of an external order.
const MAX_ORDER_REFERENCE_CHARS: usize = 40;

#[tonic::async_trait]
impl proto::withholding_service_server::WithholdingService for Withholdings {
    async fn calculate_withholding(
        &self,
        request: Request<proto::CalculateWithholdingRequest>,
    ) -> Result<Response<proto::CalculateWithholdingResponse>, Status> {
        let caller = caller_of(&request)?;
        let period = pay_period(request.into_inner().pay_period);
        let period = understood(&self.0, &caller, Action::CalculateWithholding, period).await?;
        let answer = self.0.calculate_withholding(&caller, period).await?;
        Ok(Response::new(proto::CalculateWithholdingResponse { withholding: Some(withholding(answer)) }))
    }

    type CalculatePayrollWithholdingStream =
        Pin<Box<dyn Stream<Item = Result<proto::CalculatePayrollWithholdingResponse, Status>> + Send>>;

    async fn calculate_payroll_withholding(
        &self,
        request: Request<Streaming<proto::CalculatePayrollWithholdingRequest>>,
    ) -> Result<Response<Self::CalculatePayrollWithholdingStream>, Status> {
        let caller = caller_of(&request)?;
        let run = self.0.start_payroll(&caller).await?;
        let answering = run.clone();
        let answers = request
            .into_inner()
            .map(move |message| {
                let run = run.clone();
                async move {
                    let message = message?;
                    let reference = message.employee_reference;
                    let computed = match (employee_reference(&reference), pay_period(message.pay_period)) {
                        (Ok(()), Ok(period)) => Ok(run.compute(&reference, period).await),
                        (reference, period) => Err(AppError::every_field([reference.err(), period.err()])),
                    };
                    Ok::<_, Status>((reference, computed))
                }
            })
            .buffered(PAYROLL_CONCURRENCY)
            .then(move |computed| {
                let run = answering.clone();
                async move {
                    let (reference, computed) = computed?;
                    let result = match computed {
                        Ok(computed) => run.answer(computed).await,
                        Err(error) => Err(error),
                    };
                    let result = match result {
                        Ok(answer) => proto::calculate_payroll_withholding_response::Result::Withholding(withholding(answer)),
                        Err(error) => proto::calculate_payroll_withholding_response::Result::Failure(failure(error)?),
                    };
                    let employee_reference = crate::domain::excerpt(&reference);
                    Ok(proto::CalculatePayrollWithholdingResponse { employee_reference, result: Some(result) })
                }
            });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// An employee's own problem, as its answer; any other error ends the run with its status.
fn failure(error: AppError) -> Result<proto::WithholdingFailure, Status> {
    use proto::WithholdingFailureReason as Reason;
    let message = error.to_string();
    let (reason, violations) = match error {
        AppError::InvalidArgument { field, message } => (Reason::InvalidArgument, vec![FieldViolation { field: field.to_owned(), description: message }]),
        AppError::InvalidFields(violations) => (Reason::InvalidArgument, violations),
        AppError::NotFound(_) => (Reason::NotFound, Vec::new()),
        AppError::Store(error) if error.is_unavailable() => (Reason::Unavailable, Vec::new()),
        other => return Err(other.into()),
    };
    Ok(proto::WithholdingFailure {
        reason: reason.into(),
        message,
        field_violations: violations
            .into_iter()
            .map(|v| proto::WithholdingFieldViolation { field: v.field, description: v.description })
            .collect(),
    })
}


fn employee_reference(reference: &str) -> Result<(), AppError> {
    let printable = reference.chars().all(|c| !c.is_control());
    if reference.trim().is_empty() || reference.chars().count() > MAX_REFERENCE_CHARS || !printable {
        return Err(AppError::invalid("employee_reference", format!("the employee reference is 1 to {MAX_REFERENCE_CHARS} printable characters")));
    }
    Ok(())
}

/// Collects every field's problem while a request is read.
#[derive(Default)]
struct Fields {
    violations: Vec<FieldViolation>,
}

impl Fields {
    fn wrong(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation { field: field.into(), description: description.into() });
    }

    fn take<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|description| self.wrong(field, description)).ok()
    }
}

/// An amount of the request: not negative, two places at most, at most 99999999.99. The
/// message never repeats the value (it may be an SSN typed into the wrong field).
fn amount(text: &str, required: bool) -> Result<Money, String> {
    let text = text.trim();
    if text.is_empty() {
        return if required { Err("the amount is required".into()) } else { Ok(Money::ZERO) };
    }
    if text.starts_with('-') {
        return Err("the amount cannot be negative".into());
    }
    let money = Money::parse(text).map_err(|e| e.to_string())?;
    if money > MAX_AMOUNT {
        return Err(format!("the amount is at most {MAX_AMOUNT}"));
    }
    Ok(money)
}

fn frequency(value: i32) -> Result<PayFrequency, String> {
    match proto::PayFrequency::try_from(value) {
        Ok(proto::PayFrequency::Weekly) => Ok(PayFrequency::Weekly),
        Ok(proto::PayFrequency::Biweekly) => Ok(PayFrequency::Biweekly),
        Ok(proto::PayFrequency::Semimonthly) => Ok(PayFrequency::Semimonthly),
        Ok(proto::PayFrequency::Monthly) => Ok(PayFrequency::Monthly),
        _ => Err("the frequency is PAY_FREQUENCY_WEEKLY, _BIWEEKLY, _SEMIMONTHLY or _MONTHLY".into()),
    }
}

/// Reads an employee's pay period, reporting every wrong field at once.
fn pay_period(period: Option<proto::EmployeePayPeriod>) -> Result<WithholdingRequest, AppError> {
    let Some(period) = period else { return Err(AppError::invalid("pay_period", "the pay period is required")) };
    let mut fields = Fields::default();
    let frequency = fields.take("pay_period.frequency", frequency(period.frequency));
    let pay_date = fields.take(
        "pay_period.pay_date",
        parse_iso_date(period.pay_date.trim()).ok_or_else(|| "the pay date is a real calendar date written YYYY-MM-DD".to_owned()),
    );
    let earnings = fields.take("pay_period.disposable_earnings", amount(&period.disposable_earnings, true));
    let premium = fields.take("pay_period.medical_premium", amount(&period.medical_premium, false));
    let ssn = fields.take("pay_period.employee_ssn", Ssn::parse(&period.employee_ssn).map_err(|e| e.to_string()));
    let mut case_numbers: Vec<CaseNumber> = Vec::new();
    for text in &period.case_numbers {
        match CaseNumber::parse(text) {
            Ok(case) if case_numbers.contains(&case) => fields.wrong("pay_period.case_numbers", format!("case {case} is named twice")),
            Ok(case) => case_numbers.push(case),
            Err(error) => fields.wrong("pay_period.case_numbers", error.to_string()),
        }
    }
    let mut external_orders: Vec<OrderTerms> = Vec::new();
    for (index, order) in period.external_orders.iter().enumerate() {
        let field = |name: &str| format!("pay_period.external_orders[{index}].{name}");
        let reference = order.order_reference.trim();
        if reference.is_empty() || reference.chars().count() > MAX_ORDER_REFERENCE_CHARS || reference.chars().any(char::is_control) {
            fields.wrong(field("order_reference"), format!("an order reference is 1 to {MAX_ORDER_REFERENCE_CHARS} printable characters"));
        } else if external_orders.iter().any(|o| o.order_id == reference) {
            fields.wrong(field("order_reference"), "order references are unique in a request");
        }
        let current = fields.take(&field("current_support_monthly"), amount(&order.current_support_monthly, true));
        let arrears = fields.take(&field("arrears_payment_monthly"), amount(&order.arrears_payment_monthly, false));
        if let (Some(current_monthly), Some(arrears_monthly)) = (current, arrears) {
            external_orders.push(OrderTerms {
                order_id: reference.to_owned(),
                current_monthly,
                arrears_monthly,
                old_arrears: order.old_arrears,
            });
        }
    }
    let named = period.case_numbers.len() + period.external_orders.len();
    if named == 0 || named > MAX_ORDERS {
        fields.wrong("pay_period.case_numbers", format!("name 1 to {MAX_ORDERS} cases and external orders"));
    }
    if !fields.violations.is_empty() {
        return Err(AppError::InvalidFields(fields.violations));
    }
    match (frequency, pay_date, earnings, premium, ssn) {
        (Some(frequency), Some(pay_date), Some(disposable_earnings), Some(medical_premium), Some(employee_ssn)) => Ok(WithholdingRequest {
            frequency,
            pay_date,
            disposable_earnings,
            other_family: period.supports_other_family.unwrap_or(true),
            medical_premium,
            employee_ssn,
            case_numbers,
            external_orders,
        }),
        _ => Err(AppError::Internal("a field was neither read nor reported".into())),
    }
}

fn order_withholding(order: OrderAnswer) -> proto::OrderWithholding {
    let amounts = &order.amounts;
    proto::OrderWithholding {
        case_number: order.case_number.map(|c| c.to_string()).unwrap_or_default(),
        order_id: amounts.order_id.clone(),
        current_support_due: amounts.current_due.to_string(),
        current_support_withheld: amounts.current_withheld.to_string(),
        current_support_not_withheld: amounts.current_not_withheld().to_string(),
        arrears_due: amounts.arrears_due.to_string(),
        arrears_withheld: amounts.arrears_withheld.to_string(),
        arrears_not_withheld: amounts.arrears_not_withheld().to_string(),
        old_arrears: order.old_arrears,
        withheld: amounts.withheld().to_string(),
    }
}

fn withholding(answer: WithholdingAnswer) -> proto::Withholding {
    let (premium_withheld, premium_not_withheld) = match answer.premium {
        Premium::None => (Money::ZERO, Money::ZERO),
        Premium::Withheld(amount) => (amount, Money::ZERO),
        Premium::NotWithheld(amount) => (Money::ZERO, amount),
    };
    proto::Withholding {
        orders: answer.orders.into_iter().map(order_withholding).collect(),
        medical_premium_withheld: premium_withheld.to_string(),
        medical_premium_not_withheld: premium_not_withheld.to_string(),
        notify_plan_administrator: premium_not_withheld.is_positive(),
        limits: Some(proto::WithholdingLimits {
            base_percent: u32::from(answer.limits.base_percent),
            high_percent: u32::from(answer.limits.high_percent),
            cap_base: answer.limits.cap_base.to_string(),
            cap_high: answer.limits.cap_high.to_string(),
        }),
        total_withheld: answer.total.to_string(),
        remit_by: answer.remit_by.to_string(),
        trace: answer.trace,
    }
}
