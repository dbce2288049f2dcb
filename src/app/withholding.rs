//! The withholding calculator (`withholding.md`): for one employee and pay date, the registry
//! orders of the cases named — only when they are the employee's, and the employer's — and
//! any orders given with their own amounts, through the pure rule of `domain::withholding`.
//!
//! A case that is unknown, whose obligor's SSN is not the employee's, or whose withholding
//! order another employer holds is answered the same NOT_FOUND, with the same message: the
//! calculator must not be a way to learn which cases or SSNs exist.

use chrono::{Duration, NaiveDate};
use subtle::ConstantTimeEq;

use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::withholding::{
    registry_terms, withhold, Limits, OrderTerms, OrderWithholding, PayFrequency, PayPeriod, Premium, WithholdingError,
};
use crate::domain::{CaseNumber, Fein, Money, Ssn};
use crate::storage::WithholdingOrder;

/// How far from today a pay date may be: a payroll is computed ahead of its pay date, or
/// recomputed for a recent one, never years away.
pub const PAY_DATE_WINDOW_DAYS: i64 = 366;

/// One employee's pay period, its fields already read.
#[derive(Clone, Debug)]
pub struct WithholdingRequest {
    pub frequency: PayFrequency,
    pub pay_date: NaiveDate,
    pub disposable_earnings: Money,
    /// Unknown counts as yes (the lower limit).
    pub other_family: bool,
    pub medical_premium: Money,
    pub employee_ssn: Ssn,
    pub case_numbers: Vec<CaseNumber>,
    /// Orders the registry does not hold, with their own amounts; `order_id` is the caller's
    /// reference.
    pub external_orders: Vec<OrderTerms>,
}

/// What one order gets, with the case it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderAnswer {
    /// `None` for an external order.
    pub case_number: Option<CaseNumber>,
    pub old_arrears: bool,
    pub amounts: OrderWithholding,
}

/// The calculator's answer for one employee and pay date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithholdingAnswer {
    pub orders: Vec<OrderAnswer>,
    pub premium: Premium,
    pub limits: Limits,
    pub total: Money,
    pub remit_by: NaiveDate,
    pub trace: Vec<String>,
}

/// A payroll run in progress: authorized and audited once, then one employee at a time.
#[derive(Clone)]
pub struct PayrollRun {
    app: App,
    employer_feins: Option<Vec<Fein>>,
}

impl PayrollRun {
    /// One employee's withholding; its problems are its own.
    pub async fn employee(&self, request: WithholdingRequest) -> Result<WithholdingAnswer, AppError> {
        self.app.compute_withholding(self.employer_feins.as_deref(), request).await
    }
}

impl App {
    /// One employee's withholding for one pay date.
    pub async fn calculate_withholding(&self, caller: &Caller, request: WithholdingRequest) -> Result<WithholdingAnswer, AppError> {
        let cases: Vec<&str> = request.case_numbers.iter().map(CaseNumber::as_str).collect();
        let audit = self.authorize(caller, Action::CalculateWithholding, format!("cases:{}", cases.join(","))).await?;
        let result = self.compute_withholding(caller.principal.employer_feins(), request).await;
        self.audited_read(audit, result).await
    }

    /// Starts a payroll run: the call is authorized and audited here, once.
    pub async fn start_payroll(&self, caller: &Caller) -> Result<PayrollRun, AppError> {
        let audit = self.authorize(caller, Action::CalculatePayrollWithholding, "payroll").await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(PayrollRun { app: self.clone(), employer_feins: caller.principal.employer_feins().map(<[Fein]>::to_vec) })
    }

    async fn compute_withholding(&self, employer_feins: Option<&[Fein]>, request: WithholdingRequest) -> Result<WithholdingAnswer, AppError> {
        self.check_pay_date(request.pay_date)?;
        let stored = self.store.orders_of_cases(&request.case_numbers).await?;
        let ssn_hmac = self.pii.ssn_hmac(&request.employee_ssn);
        let mut orders: Vec<(Option<CaseNumber>, OrderTerms)> = Vec::new();
        let mut not_found = Vec::new();
        for case in &request.case_numbers {
            let of_case: Vec<&WithholdingOrder> = stored.iter().filter(|o| &o.ledger.order().case_number == case).collect();
            if of_case.is_empty() || !of_case.iter().all(|o| visible(o, &ssn_hmac, employer_feins)) {
                not_found.push(case.as_str());
                continue;
            }
            for order in of_case {
                let terms = registry_terms(&order.ledger, order.arrears_payment_monthly, request.pay_date);
                orders.push((Some(case.clone()), terms));
            }
        }
        if !not_found.is_empty() {
            // The same words whatever the reason, and nothing about the SSN.
            return Err(AppError::NotFound(format!("no case {} for this employee", not_found.join(", "))));
        }
        orders.extend(request.external_orders.into_iter().map(|terms| (None, terms)));
        let period = PayPeriod {
            frequency: request.frequency,
            pay_date: request.pay_date,
            disposable_earnings: request.disposable_earnings,
            other_family: request.other_family,
            medical_premium: request.medical_premium,
            orders: orders.iter().map(|(_, terms)| terms.clone()).collect(),
        };
        let withholding = withhold(&period).map_err(invalid_period)?;
        let orders = orders
            .into_iter()
            .zip(withholding.orders)
            .map(|((case_number, terms), amounts)| OrderAnswer { case_number, old_arrears: terms.old_arrears, amounts })
            .collect();
        Ok(WithholdingAnswer {
            orders,
            premium: withholding.premium,
            limits: withholding.limits,
            total: withholding.total,
            remit_by: withholding.remit_by,
            trace: withholding.trace,
        })
    }

    fn check_pay_date(&self, pay_date: NaiveDate) -> Result<(), AppError> {
        let today = self.today();
        let window = Duration::days(PAY_DATE_WINDOW_DAYS);
        if pay_date < today - window || pay_date > today + window {
            return Err(AppError::invalid("pay_period.pay_date", format!("the pay date must be within {PAY_DATE_WINDOW_DAYS} days of today")));
        }
        Ok(())
    }
}

/// Whether the employee asking may see this registry order: its obligor's SSN is the
/// employee's, and an employer key holds its withholding order when the registry names one.
fn visible(order: &WithholdingOrder, ssn_hmac: &str, employer_feins: Option<&[Fein]>) -> bool {
    let same_person: bool = order.ssn_hmac.as_bytes().ct_eq(ssn_hmac.as_bytes()).into();
    let employer_holds = match (employer_feins, &order.employer_fein) {
        (Some(feins), Some(fein)) => feins.contains(fein),
        _ => true,
    };
    same_person && employer_holds
}

/// A pay period the rule refuses, as the field of the request to change.
fn invalid_period(error: WithholdingError) -> AppError {
    let field = match &error {
        WithholdingError::NegativeEarnings => "pay_period.disposable_earnings",
        WithholdingError::NegativePremium => "pay_period.medical_premium",
        WithholdingError::OrderCount => "pay_period.case_numbers",
        WithholdingError::NegativeAmount(_) | WithholdingError::DuplicateOrder(_) | WithholdingError::TooLarge => {
            "pay_period.external_orders"
        }
    };
    AppError::invalid(field, error.to_string())
}
