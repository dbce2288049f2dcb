//! How much an employer withholds from one employee's pay this pay period, per order, within
//! the federal limits (`withholding.md`): current support first, prorated; then the medical
//! premium, whole or not at all; then arrears, prorated, the band above the base limit only
//! for arrears more than 12 weeks old. Integer cents throughout; every split adds up.

use chrono::NaiveDate;

use super::apportion::apportion;
use super::calendar::add_business_days;
use super::distribution::OrderLedger;
use super::money::Money;
use super::month::YearMonth;

/// How often the employee is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayFrequency {
    Weekly,
    Biweekly,
    Semimonthly,
    Monthly,
}

impl PayFrequency {
    pub fn periods_per_year(self) -> i64 {
        match self {
            PayFrequency::Weekly => 52,
            PayFrequency::Biweekly => 26,
            PayFrequency::Semimonthly => 24,
            PayFrequency::Monthly => 12,
        }
    }

    /// A monthly amount for one pay period: `monthly × 12 ÷ periods`, rounded half up to the
    /// cent (never `÷ 4.33`, never "monthly ÷ 2" for biweekly pay).
    pub fn per_period(self, monthly: Money) -> Money {
        let periods = self.periods_per_year();
        let twice = i128::from(monthly.cents()) * 12 * 2;
        let cents = (twice + i128::from(periods)) / (2 * i128::from(periods));
        Money::from_cents(i64::try_from(cents).expect("a per-period amount fits"))
    }
}

/// One order's terms, per month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTerms {
    /// The order's id: the last tie-break when a cent must go to one order or another.
    pub order_id: String,
    pub current_monthly: Money,
    /// The IWO's amount for arrears (0 if none).
    pub arrears_monthly: Money,
    /// Whether arrears more than 12 weeks old exist: only they may use the band above the base
    /// limit.
    pub old_arrears: bool,
}

/// One employee's pay period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayPeriod {
    pub frequency: PayFrequency,
    pub pay_date: NaiveDate,
    pub disposable_earnings: Money,
    /// Supports a spouse or child not covered by these orders (unknown counts as yes).
    pub other_family: bool,
    /// The employee's share of the health premium a medical support notice requires.
    pub medical_premium: Money,
    pub orders: Vec<OrderTerms>,
}

/// The most orders one employee's calculation takes.
pub const MAX_ORDERS: usize = 50;

/// Why a pay period cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WithholdingError {
    #[error("disposable earnings cannot be negative")]
    NegativeEarnings,
    #[error("the medical premium cannot be negative")]
    NegativePremium,
    #[error("order {0}: amounts cannot be negative")]
    NegativeAmount(String),
    #[error("at least one order is needed, at most {MAX_ORDERS}")]
    OrderCount,
    #[error("order {0} appears twice")]
    DuplicateOrder(String),
    /// Earnings, a premium or an order's amount above [`MAX_AMOUNT`]: no pay period is that
    /// large, and the sums must stay exact.
    #[error("amounts are at most {MAX_AMOUNT}")]
    TooLarge,
}

/// The largest amount the rule takes: the largest amount of a remittance line.
pub const MAX_AMOUNT: Money = Money::MAX_LINE_AMOUNT;

/// How far back arrears count as recent: 12 weeks (15 U.S.C. 1673(b)(2)).
pub const RECENT_ARREARS_DAYS: i64 = 84;

/// A registry order's terms for a pay date, from its ledger (`withholding.md`, "Inputs"):
/// current support is its monthly amount while the pay date's month is due (0 after its end
/// month); the arrears payment is `arrears_payment_monthly` capped at the arrears as of the
/// pay date; arrears more than 12 weeks old exist when those arrears exceed the unpaid
/// current support of the earlier months whose first day is in the 84 days before the pay
/// date (arrears are paid oldest first, so the recent months are the last to be paid).
pub fn registry_terms(ledger: &OrderLedger, arrears_payment_monthly: Money, pay_date: NaiveDate) -> OrderTerms {
    let order = ledger.order();
    let month = YearMonth::of(pay_date);
    let current_monthly = if order.is_due(month) { order.monthly_amount } else { Money::ZERO };
    let arrears = ledger.arrears(month);
    let recent_from = pay_date - chrono::Duration::days(RECENT_ARREARS_DAYS);
    let mut recent_unpaid = Money::ZERO;
    let mut earlier = month.previous();
    while earlier.first_day() >= recent_from {
        recent_unpaid += ledger.current_due(earlier);
        earlier = earlier.previous();
    }
    OrderTerms {
        order_id: order.id.to_string(),
        current_monthly,
        arrears_monthly: arrears_payment_monthly.min(arrears),
        old_arrears: arrears > recent_unpaid,
    }
}

/// The limits that applied (15 U.S.C. 1673(b)(2)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// 50 with another family to support, else 60.
    pub base_percent: u8,
    /// `base_percent + 5` when some order has old arrears, else `base_percent`.
    pub high_percent: u8,
    pub cap_base: Money,
    pub cap_high: Money,
}

/// What one order gets this period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderWithholding {
    pub order_id: String,
    pub current_due: Money,
    pub current_withheld: Money,
    pub arrears_due: Money,
    pub arrears_withheld: Money,
}

impl OrderWithholding {
    pub fn current_not_withheld(&self) -> Money {
        self.current_due - self.current_withheld
    }

    pub fn arrears_not_withheld(&self) -> Money {
        self.arrears_due - self.arrears_withheld
    }

    pub fn withheld(&self) -> Money {
        self.current_withheld + self.arrears_withheld
    }
}

/// The medical premium's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Premium {
    /// No premium was asked for.
    None,
    Withheld(Money),
    /// It did not fit in what was left of the base limit: nothing of it is withheld, and the
    /// employer must tell the plan administrator that the limit prevents it.
    NotWithheld(Money),
}

/// The answer for one pay period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withholding {
    /// In the order the request gave them.
    pub orders: Vec<OrderWithholding>,
    pub premium: Premium,
    pub limits: Limits,
    /// Everything withheld: current, premium and arrears.
    pub total: Money,
    /// The pay date plus 7 business days.
    pub remit_by: NaiveDate,
    /// The steps that decided the amounts, for people.
    pub trace: Vec<String>,
}

/// `amount × percent ÷ 100`, rounded down.
fn percent_of(amount: Money, percent: u8) -> Money {
    Money::from_cents(amount.cents() * i64::from(percent) / 100)
}

/// Divides `total` among `weights` (given with their order ids) by the distribution's rule:
/// largest remainder; ties to the larger weight, then the smaller order id.
fn divide(total: Money, parts: &[(&str, Money)]) -> Vec<Money> {
    let mut by_id: Vec<usize> = (0..parts.len()).collect();
    by_id.sort_by(|&a, &b| parts[a].0.cmp(parts[b].0));
    let weights: Vec<Money> = by_id.iter().map(|&i| parts[i].1).collect();
    let shares = apportion(total, &weights);
    let mut result = vec![Money::ZERO; parts.len()];
    for (share, &index) in shares.into_iter().zip(&by_id) {
        result[index] = share;
    }
    assert_eq!(result.iter().sum::<Money>(), total, "a division adds up to the whole");
    result
}

/// The rule of `withholding.md` for one employee and pay date.
pub fn withhold(period: &PayPeriod) -> Result<Withholding, WithholdingError> {
    check(period)?;
    let mut trace = Vec::new();
    let frequency = period.frequency;
    let orders = &period.orders;

    // 1. Per period.
    let current: Vec<Money> = orders.iter().map(|o| frequency.per_period(o.current_monthly)).collect();
    let arrears: Vec<Money> = orders.iter().map(|o| frequency.per_period(o.arrears_monthly)).collect();
    trace.push(format!(
        "monthly amounts × 12 ÷ {} pay periods: current {}, arrears {}",
        frequency.periods_per_year(),
        current.iter().sum::<Money>(),
        arrears.iter().sum::<Money>()
    ));

    // 2. The limits.
    let base_percent = if period.other_family { 50 } else { 60 };
    let any_old = orders.iter().any(|o| o.old_arrears);
    let high_percent = if any_old { base_percent + 5 } else { base_percent };
    let cap_base = percent_of(period.disposable_earnings, base_percent);
    let cap_high = percent_of(period.disposable_earnings, high_percent);
    let limits = Limits { base_percent, high_percent, cap_base, cap_high };
    trace.push(format!(
        "limits: {base_percent}% of {} = {cap_base}; {high_percent}% = {cap_high}{}",
        period.disposable_earnings,
        if any_old { " (arrears more than 12 weeks old)" } else { "" }
    ));

    // 3. Current support first.
    let current_total: Money = current.iter().sum();
    let current_withheld: Vec<Money> = if current_total <= cap_base {
        trace.push(format!("current support {current_total} fits in {cap_base}: withheld whole"));
        current.clone()
    } else {
        trace.push(format!("current support {current_total} is over {cap_base}: {cap_base} divided in proportion"));
        let parts: Vec<(&str, Money)> = orders.iter().map(|o| o.order_id.as_str()).zip(current.iter().copied()).collect();
        divide(cap_base, &parts)
    };
    let mut left = cap_base - current_withheld.iter().sum::<Money>();

    // 4. Then the medical premium, whole or not at all.
    let premium = if period.medical_premium.is_zero() {
        Premium::None
    } else if period.medical_premium <= left {
        left -= period.medical_premium;
        trace.push(format!("medical premium {} fits: withheld", period.medical_premium));
        Premium::Withheld(period.medical_premium)
    } else {
        trace.push(format!(
            "medical premium {} does not fit in the {left} left: not withheld; tell the plan administrator",
            period.medical_premium
        ));
        Premium::NotWithheld(period.medical_premium)
    };

    // 5. Then arrears: the band only for old arrears, and the others never past room_base.
    let room_base = left;
    let band = cap_high - cap_base;
    let arrears_total: Money = arrears.iter().sum();
    let old_total: Money = orders.iter().zip(&arrears).filter(|(o, _)| o.old_arrears).map(|(_, a)| *a).sum();
    let arrears_in_all = arrears_total.min(room_base + band.min(old_total));
    let parts: Vec<(&str, Money)> = orders.iter().map(|o| o.order_id.as_str()).zip(arrears.iter().copied()).collect();
    let mut arrears_withheld = divide(arrears_in_all, &parts);
    let young_share: Money = orders.iter().zip(&arrears_withheld).filter(|(o, _)| !o.old_arrears).map(|(_, a)| *a).sum();
    if young_share > room_base {
        // The orders without old arrears share room_base; those with old arrears the rest.
        let young: Vec<usize> = (0..orders.len()).filter(|&i| !orders[i].old_arrears).collect();
        let old: Vec<usize> = (0..orders.len()).filter(|&i| orders[i].old_arrears).collect();
        let young_parts: Vec<(&str, Money)> = young.iter().map(|&i| (orders[i].order_id.as_str(), arrears[i])).collect();
        let old_parts: Vec<(&str, Money)> = old.iter().map(|&i| (orders[i].order_id.as_str(), arrears[i])).collect();
        for (share, &i) in divide(room_base, &young_parts).into_iter().zip(&young) {
            arrears_withheld[i] = share;
        }
        for (share, &i) in divide(arrears_in_all - room_base, &old_parts).into_iter().zip(&old) {
            arrears_withheld[i] = share;
        }
        trace.push(format!("arrears {arrears_in_all}: the orders without old arrears share {room_base}, the others the rest"));
    } else {
        trace.push(format!("arrears {arrears_in_all} of {arrears_total} divided in proportion"));
    }
    assert_eq!(arrears_withheld.iter().sum::<Money>(), arrears_in_all, "the arrears add up");

    let results: Vec<OrderWithholding> = orders
        .iter()
        .enumerate()
        .map(|(i, order)| OrderWithholding {
            order_id: order.order_id.clone(),
            current_due: current[i],
            current_withheld: current_withheld[i],
            arrears_due: arrears[i],
            arrears_withheld: arrears_withheld[i],
        })
        .collect();
    let premium_withheld = match premium {
        Premium::Withheld(amount) => amount,
        _ => Money::ZERO,
    };
    let total = results.iter().map(OrderWithholding::withheld).sum::<Money>() + premium_withheld;
    assert!(total <= cap_high, "withheld {total} is over the limit {cap_high}");
    Ok(Withholding { orders: results, premium, limits, total, remit_by: add_business_days(period.pay_date, 7), trace })
}

fn check(period: &PayPeriod) -> Result<(), WithholdingError> {
    if period.disposable_earnings.is_negative() {
        return Err(WithholdingError::NegativeEarnings);
    }
    if period.medical_premium.is_negative() {
        return Err(WithholdingError::NegativePremium);
    }
    let too_large = |amount: Money| amount > MAX_AMOUNT;
    if too_large(period.disposable_earnings)
        || too_large(period.medical_premium)
        || period.orders.iter().any(|o| too_large(o.current_monthly) || too_large(o.arrears_monthly))
    {
        return Err(WithholdingError::TooLarge);
    }
    if period.orders.is_empty() || period.orders.len() > MAX_ORDERS {
        return Err(WithholdingError::OrderCount);
    }
    let mut ids: Vec<&str> = period.orders.iter().map(|o| o.order_id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(WithholdingError::DuplicateOrder(pair[0].to_owned()));
    }
    if let Some(order) = period.orders.iter().find(|o| o.current_monthly.is_negative() || o.arrears_monthly.is_negative()) {
        return Err(WithholdingError::NegativeAmount(order.order_id.clone()));
    }
    Ok(())
}
