//! The withholding calculator (`withholding.md`): for one employee and pay date, the registry
//! orders of the cases named — only when they are the employee's, and the employer's — and
//! any orders given with their own amounts, through the pure rule of `domain::withholding`.
//!
//! A case that is unknown, whose obligor's SSN is not the employee's, or whose withholding
//! order another employer holds is answered the same NOT_FOUND, with the same message that
//! names no case: the calculator must not be a way to learn which cases or SSNs exist. Each
//! sender has a budget of such answers (a payroll with a typo needs a few, a search for a
//! person's case millions), and each is in the audit trail.

use std::num::NonZeroU32;

use chrono::{Duration, NaiveDate};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
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

/// The answer to a request naming a case that is not the employee's: the same whatever the
/// reason, and naming no case (which one failed would tell which ones are the person's).
pub const NOT_FOUND_MESSAGE: &str = "not every case named is this employee's: check the case numbers and the SSN";

/// Each sender's budget of NOT_FOUND answers: a burst for a payroll's typos, then a slow
/// trickle, so that trying case numbers against an SSN (10⁸ of them) is hopeless.
pub struct LookupBudget {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl LookupBudget {
    /// 200 at once, then one every 6 seconds (600 an hour).
    pub fn standard() -> LookupBudget {
        let quota = Quota::with_period(std::time::Duration::from_secs(6)).expect("a non-zero period");
        LookupBudget { limiter: RateLimiter::keyed(quota.allow_burst(NonZeroU32::new(200).expect("non-zero"))) }
    }

    /// Spends one NOT_FOUND of `sender`'s; past the budget, the sender must wait.
    fn spend(&self, sender: &str) -> Result<(), AppError> {
        self.limiter.check_key(&sender.to_owned()).map_err(|not_until| AppError::RateLimited {
            what: "too many cases not found for this sender",
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }
}

/// A payroll run in progress: authorized once; each employee's NOT_FOUND is audited and
/// spends the sender's budget.
///
/// Employees are computed several at a time ([`PayrollRun::compute`]) but answered one by one in
/// the order they were sent ([`PayrollRun::answer`]), and only answering spends the budget: the
/// burst is the first 200 NOT_FOUNDs sent, not whichever 200 happened to finish first.
#[derive(Clone)]
pub struct PayrollRun {
    app: App,
    caller: Caller,
}

/// One employee's withholding, computed and not yet answered.
pub struct ComputedEmployee {
    reference: String,
    cases: Vec<CaseNumber>,
    result: Result<WithholdingAnswer, AppError>,
}

impl PayrollRun {
    /// Computes one employee's withholding (`reference` is the caller's name for the employee);
    /// nothing is spent or audited yet.
    pub async fn compute(&self, reference: &str, request: WithholdingRequest) -> ComputedEmployee {
        let cases = request.case_numbers.clone();
        let result = self.app.compute_withholding(&self.caller, request).await;
        ComputedEmployee { reference: reference.to_owned(), cases, result }
    }

    /// Answers a computed employee: its problems are its own, except a spent budget, which ends
    /// the run. Call in the order the employees were sent.
    pub async fn answer(&self, computed: ComputedEmployee) -> Result<WithholdingAnswer, AppError> {
        let ComputedEmployee { reference, cases, result } = computed;
        let result = self.app.spend_on_not_found(&self.caller, result);
        if matches!(result, Err(AppError::NotFound(_) | AppError::RateLimited { .. })) {
            let object = format!("payroll:{reference}:{}", case_list(&cases));
            let audit = self.app.authorize(&self.caller, Action::CalculatePayrollWithholding, object).await?;
            return self.app.audited_read(audit, result).await;
        }
        result
    }
}

fn case_list(cases: &[CaseNumber]) -> String {
    format!("cases:{}", cases.iter().map(CaseNumber::as_str).collect::<Vec<_>>().join(","))
}

impl App {
    /// One employee's withholding for one pay date.
    pub async fn calculate_withholding(&self, caller: &Caller, request: WithholdingRequest) -> Result<WithholdingAnswer, AppError> {
        let audit = self.authorize(caller, Action::CalculateWithholding, case_list(&request.case_numbers)).await?;
        let result = self.compute_withholding(caller, request).await;
        let result = self.spend_on_not_found(caller, result);
        self.audited_read(audit, result).await
    }

    /// A NOT_FOUND spends one of the sender's budget; past it, the answer is RESOURCE_EXHAUSTED.
    fn spend_on_not_found(&self, caller: &Caller, result: Result<WithholdingAnswer, AppError>) -> Result<WithholdingAnswer, AppError> {
        if matches!(result, Err(AppError::NotFound(_))) {
            self.lookups.spend(&caller.principal.name)?;
        }
        result
    }

    /// Starts a payroll run: the call is authorized and audited here, once.
    pub async fn start_payroll(&self, caller: &Caller) -> Result<PayrollRun, AppError> {
        let audit = self.authorize(caller, Action::CalculatePayrollWithholding, "payroll").await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(PayrollRun { app: self.clone(), caller: caller.clone() })
    }

    async fn compute_withholding(&self, caller: &Caller, request: WithholdingRequest) -> Result<WithholdingAnswer, AppError> {
        self.check_pay_date(request.pay_date)?;
        let employer_feins = caller.principal.employer_feins();
        let stored = self.store.orders_of_cases(&request.case_numbers, request.pay_date).await?;
        let ssn_hmac = self.pii.ssn_hmac(&request.employee_ssn);
        let mut orders: Vec<(Option<CaseNumber>, OrderTerms)> = Vec::new();
        let mut all_found = true;
        for case in &request.case_numbers {
            let of_case: Vec<&WithholdingOrder> = stored.iter().filter(|o| &o.ledger.order().case_number == case).collect();
            if of_case.is_empty() || !of_case.iter().all(|o| visible(o, &ssn_hmac, employer_feins)) {
                all_found = false;
                continue;
            }
            for order in of_case {
                let terms = registry_terms(&order.ledger, order.arrears_payment_monthly, request.pay_date);
                orders.push((Some(case.clone()), terms));
            }
        }
        if !all_found {
            return Err(AppError::NotFound(NOT_FOUND_MESSAGE.to_owned()));
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
