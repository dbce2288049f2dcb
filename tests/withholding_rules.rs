//! The withholding rule (`withholding.md`) as a pure function: every worked example as a
//! table, and the rule's promises as properties over random pay periods.

use chrono::NaiveDate;
use gateway::domain::withholding::{registry_terms, withhold, OrderTerms, PayFrequency, PayPeriod, Premium, WithholdingError};
use gateway::domain::{Bucket, CaseNumber, Money, Order, OrderId, OrderLedger, YearMonth};
use proptest::prelude::*;

fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn order(id: &str, current: &str, arrears: &str, old: bool) -> OrderTerms {
    OrderTerms { order_id: id.into(), current_monthly: m(current), arrears_monthly: m(arrears), old_arrears: old }
}

fn period(frequency: PayFrequency, earnings: &str, other_family: bool, premium: &str, orders: Vec<OrderTerms>) -> PayPeriod {
    PayPeriod {
        frequency,
        pay_date: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
        disposable_earnings: m(earnings),
        other_family,
        medical_premium: m(premium),
        orders,
    }
}

/// (order, current withheld, arrears withheld) of each order.
fn withheld(period: &PayPeriod) -> Vec<(String, String, String)> {
    let answer = withhold(period).unwrap();
    answer.orders.iter().map(|o| (o.order_id.clone(), o.current_withheld.to_string(), o.arrears_withheld.to_string())).collect()
}

fn row(id: &str, current: &str, arrears: &str) -> (String, String, String) {
    (id.into(), current.into(), arrears.into())
}

use PayFrequency::*;

#[test]
fn per_period_amounts_are_monthly_times_twelve_over_the_periods_rounded_half_up() {
    assert_eq!(Weekly.per_period(m("528.00")), m("121.85"));
    assert_eq!(Biweekly.per_period(m("528.00")), m("243.69"));
    assert_eq!(Semimonthly.per_period(m("528.00")), m("264.00"));
    assert_eq!(Monthly.per_period(m("528.00")), m("528.00"));
    assert_eq!(Weekly.per_period(m("400.00")), m("92.31"));
}

#[test]
fn e1_one_order_within_the_limit() {
    let p = period(Weekly, "600.00", false, "0", vec![order("A", "400.00", "0", false)]);
    assert_eq!(withheld(&p), [row("A", "92.31", "0.00")]);
}

#[test]
fn e2_current_support_over_the_limit_and_no_old_arrears() {
    let p = period(Biweekly, "800.00", true, "0", vec![order("A", "1200.00", "200.00", false)]);
    let answer = withhold(&p).unwrap();
    assert_eq!(withheld(&p), [row("A", "400.00", "0.00")]);
    let a = &answer.orders[0];
    assert_eq!(a.current_not_withheld() + a.arrears_not_withheld(), m("246.16"));
}

#[test]
fn e2b_old_arrears_use_the_five_percent_band() {
    let p = period(Biweekly, "800.00", true, "0", vec![order("A", "1200.00", "200.00", true)]);
    let answer = withhold(&p).unwrap();
    assert_eq!(withheld(&p), [row("A", "400.00", "40.00")]);
    assert_eq!((answer.limits.base_percent, answer.limits.high_percent), (50, 55));
    let a = &answer.orders[0];
    assert_eq!(a.current_not_withheld() + a.arrears_not_withheld(), m("206.16"));
}

#[test]
fn e3_two_orders_share_the_limit_and_the_odd_cent_goes_to_the_larger_remainder() {
    let p = period(Weekly, "310.00", true, "0", vec![order("A", "500.00", "0", false), order("B", "350.00", "0", false)]);
    assert_eq!(withheld(&p), [row("A", "91.17", "0.00"), row("B", "63.83", "0.00")]);
    assert_eq!(withhold(&p).unwrap().total, m("155.00"));
}

#[test]
fn e4_monthly_with_old_arrears_reaches_sixty_five_percent() {
    let p = period(Monthly, "1800.00", false, "0", vec![order("A", "900.00", "300.00", true)]);
    assert_eq!(withheld(&p), [row("A", "900.00", "270.00")]);
}

#[test]
fn e5_the_premium_comes_after_current_support_and_before_arrears() {
    let p = period(Biweekly, "700.00", false, "75.00", vec![order("A", "650.00", "100.00", false)]);
    let answer = withhold(&p).unwrap();
    assert_eq!(withheld(&p), [row("A", "300.00", "45.00")]);
    assert_eq!(answer.premium, Premium::Withheld(m("75.00")));
    assert_eq!(answer.total, m("420.00"));
    assert_eq!(answer.orders[0].arrears_not_withheld(), m("1.15"));
}

#[test]
fn e6_orders_without_old_arrears_never_take_more_than_room_base() {
    let p = period(Weekly, "650.00", false, "0", vec![order("A", "1000.00", "400.00", false), order("B", "600.00", "500.00", true)]);
    let answer = withhold(&p).unwrap();
    assert_eq!(withheld(&p), [row("A", "230.77", "20.77"), row("B", "138.46", "32.50")]);
    assert_eq!((answer.limits.cap_base, answer.limits.cap_high, answer.total), (m("390.00"), m("422.50"), m("422.50")));
}

#[test]
fn a_premium_that_does_not_fit_is_not_withheld_at_all() {
    let p = period(Biweekly, "700.00", false, "150.00", vec![order("A", "650.00", "0", false)]);
    let answer = withhold(&p).unwrap();
    assert_eq!(answer.premium, Premium::NotWithheld(m("150.00")));
    assert_eq!(answer.total, m("300.00"));
    assert!(answer.trace.iter().any(|step| step.contains("plan administrator")));
}

#[test]
fn the_remit_by_date_is_seven_business_days_after_the_pay_date() {
    // Friday Dec 4, 2026: seven business days later is Tuesday Dec 15.
    let p = period(Weekly, "600.00", false, "0", vec![order("A", "400.00", "0", false)]);
    assert_eq!(withhold(&p).unwrap().remit_by, NaiveDate::from_ymd_opt(2026, 12, 15).unwrap());
}

#[test]
fn bad_pay_periods_are_refused() {
    let mut p = period(Weekly, "600.00", false, "0", vec![]);
    assert_eq!(withhold(&p), Err(WithholdingError::OrderCount));
    p.orders = vec![order("A", "400.00", "0", false), order("A", "1.00", "0", false)];
    assert_eq!(withhold(&p), Err(WithholdingError::DuplicateOrder("A".into())));
    p.orders = vec![order("A", "400.00", "0", false)];
    p.disposable_earnings = Money::from_cents(-1);
    assert_eq!(withhold(&p), Err(WithholdingError::NegativeEarnings));
    p.disposable_earnings = m("100000000.00");
    assert_eq!(withhold(&p), Err(WithholdingError::TooLarge));
    p.disposable_earnings = m("600.00");
    p.orders = vec![order("A", "100000000.00", "0", false)];
    assert_eq!(withhold(&p), Err(WithholdingError::TooLarge));
}

// ---- Registry orders: the terms derived from the ledger ----

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn month(text: &str) -> YearMonth {
    YearMonth::parse(text).unwrap()
}

/// An order of 400.00 a month from `start`, with `opening` arrears and an optional end.
fn ledger(start: &str, opening: &str, end: Option<&str>) -> OrderLedger {
    OrderLedger::new(Order {
        id: OrderId::parse("ORD-1").unwrap(),
        case_number: CaseNumber::parse("12345678").unwrap(),
        monthly_amount: m("400.00"),
        start_month: month(start),
        opening_arrears: m(opening),
        end_date: end.map(date),
    })
}

#[test]
fn an_order_unpaid_for_months_has_old_arrears_and_its_arrears_payment() {
    // Due Jan–Nov unpaid: 4,400.00 of arrears, of which Oct and Nov (first days within 84
    // days of Dec 4) are recent; the rest is old.
    let terms = registry_terms(&ledger("2026-01", "0", None), m("200.00"), date("2026-12-04"));
    assert_eq!(terms, order("ORD-1", "400.00", "200.00", true));
}

#[test]
fn arrears_of_the_last_twelve_weeks_only_are_not_old() {
    let mut paid_up = ledger("2026-01", "0", None);
    for m_ in ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"] {
        paid_up.record(Bucket::Current, Some(month(m_)), m("400.00"));
    }
    paid_up.record(Bucket::Current, Some(month("2026-10")), m("150.00"));
    // Arrears 650.00: 250.00 of October and 400.00 of November, both recent.
    let terms = registry_terms(&paid_up, m("100.00"), date("2026-12-04"));
    assert_eq!(terms, order("ORD-1", "400.00", "100.00", false));
    // A month later October's first day is more than 84 days back: its 250.00 is old.
    let later = registry_terms(&paid_up, m("100.00"), date("2027-01-08"));
    assert!(later.old_arrears);
}

#[test]
fn arrears_paid_oldest_first_leave_only_recent_months_owed() {
    let mut order = ledger("2026-01", "0", None);
    // 3,600.00 paid toward arrears: Jan–Sep are paid, Oct and Nov (recent) are owed.
    order.record(Bucket::Arrears, None, m("3600.00"));
    assert!(!registry_terms(&order, m("50.00"), date("2026-12-04")).old_arrears);
    // One cent less and a cent of September is still owed: old.
    let mut short = ledger("2026-01", "0", None);
    short.record(Bucket::Arrears, None, m("3599.99"));
    assert!(registry_terms(&short, m("50.00"), date("2026-12-04")).old_arrears);
}

#[test]
fn opening_arrears_are_old() {
    let terms = registry_terms(&ledger("2026-11", "0.01", None), m("25.00"), date("2026-12-04"));
    assert_eq!(terms, order("ORD-1", "400.00", "25.00", true));
}

#[test]
fn the_arrears_payment_is_capped_at_the_arrears() {
    let mut order = ledger("2026-11", "0", None);
    order.record(Bucket::Current, Some(month("2026-11")), m("360.00"));
    let terms = registry_terms(&order, m("200.00"), date("2026-12-04"));
    assert_eq!(terms, order_terms("400.00", "40.00", false));
    let none_owed = registry_terms(&ledger("2026-12", "0", None), m("200.00"), date("2026-12-04"));
    assert_eq!(none_owed, order_terms("400.00", "0.00", false));
}

#[test]
fn no_current_support_after_the_end_month_or_before_the_start() {
    // Ended in October: October is owed in full, November and December are not.
    let ended = registry_terms(&ledger("2026-09", "0", Some("2026-10-15")), m("100.00"), date("2026-12-04"));
    assert_eq!(ended, order_terms("0.00", "100.00", true));
    let not_started = registry_terms(&ledger("2027-01", "0", None), m("100.00"), date("2026-12-04"));
    assert_eq!(not_started, order_terms("0.00", "0.00", false));
}

fn order_terms(current: &str, arrears: &str, old: bool) -> OrderTerms {
    order("ORD-1", current, arrears, old)
}

fn frequency() -> impl Strategy<Value = PayFrequency> {
    prop_oneof![Just(Weekly), Just(Biweekly), Just(Semimonthly), Just(Monthly)]
}

fn orders() -> impl Strategy<Value = Vec<OrderTerms>> {
    proptest::collection::vec((0i64..300_000, 0i64..100_000, any::<bool>()), 1..5).prop_map(|terms| {
        terms
            .into_iter()
            .enumerate()
            .map(|(i, (current, arrears, old))| OrderTerms {
                order_id: format!("ORD-{i}"),
                current_monthly: Money::from_cents(current),
                arrears_monthly: Money::from_cents(arrears),
                old_arrears: old && arrears > 0,
            })
            .collect()
    })
}

fn pay_period() -> impl Strategy<Value = PayPeriod> {
    (frequency(), 0i64..500_000, any::<bool>(), prop_oneof![Just(0i64), 0i64..30_000], orders()).prop_map(
        |(frequency, earnings, other_family, premium, orders)| PayPeriod {
            frequency,
            pay_date: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap(),
            disposable_earnings: Money::from_cents(earnings),
            other_family,
            medical_premium: Money::from_cents(premium),
            orders,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_rules_promises_hold(p in pay_period()) {
        let answer = withhold(&p).unwrap();
        let limits = answer.limits;
        // Never above cap_high.
        prop_assert!(answer.total <= limits.cap_high);
        // Current support (and the premium, which counts as current) never uses the band.
        let current: Money = answer.orders.iter().map(|o| o.current_withheld).sum();
        let premium = match answer.premium { Premium::Withheld(amount) => amount, _ => Money::ZERO };
        prop_assert!(current + premium <= limits.cap_base);
        // Current support is withheld whole whenever it fits.
        let current_due: Money = answer.orders.iter().map(|o| o.current_due).sum();
        if current_due <= limits.cap_base {
            prop_assert_eq!(current, current_due);
        }
        // Orders without old arrears never take more than room_base.
        let room_base = limits.cap_base - current - premium;
        let young: Money = p.orders.iter().zip(&answer.orders).filter(|(o, _)| !o.old_arrears).map(|(_, w)| w.arrears_withheld).sum();
        prop_assert!(young <= room_base);
        // Withheld + not withheld = what was ordered, per order; nothing above what is due.
        for order in &answer.orders {
            prop_assert!(order.current_withheld <= order.current_due && order.arrears_withheld <= order.arrears_due);
            prop_assert!(!order.current_withheld.is_negative() && !order.arrears_withheld.is_negative());
            prop_assert_eq!(order.current_withheld + order.current_not_withheld(), order.current_due);
            prop_assert_eq!(order.arrears_withheld + order.arrears_not_withheld(), order.arrears_due);
        }
        prop_assert_eq!(answer.total, answer.orders.iter().map(|o| o.withheld()).sum::<Money>() + premium);
    }

    #[test]
    fn the_order_in_which_orders_are_listed_changes_nothing(p in pay_period()) {
        let forward = withhold(&p).unwrap();
        let mut reversed = p.clone();
        reversed.orders.reverse();
        let backward = withhold(&reversed).unwrap();
        let mut a: Vec<_> = forward.orders.iter().map(|o| (o.order_id.clone(), o.current_withheld, o.arrears_withheld)).collect();
        let mut b: Vec<_> = backward.orders.iter().map(|o| (o.order_id.clone(), o.current_withheld, o.arrears_withheld)).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
        prop_assert_eq!(forward.total, backward.total);
    }
}
