//! The line rules of `remittance-formats.md`, one table row per rule and problem code.

use chrono::NaiveDate;
use gateway::domain::remittance::{check_line, CaseMatch, DateStyle, LineStatus, ObligorDirectory, ProblemCode, RawLine, Severity};
use gateway::domain::{CaseNumber, ObligorId, Ssn};

/// Case 12345678 is OB-1's (SSN 123-45-6789); SSN 223-45-6789 is OB-2's; SSN 323-45-6789
/// belongs to two obligors.
struct Registry;

impl ObligorDirectory for Registry {
    fn case_with_ssn(&self, case: &CaseNumber, ssn: &Ssn) -> CaseMatch {
        match (case.as_str(), ssn.expose_digits()) {
            ("12345678", "123456789") => CaseMatch::SsnMatches(ObligorId::parse("OB-1").unwrap()),
            ("12345678", _) => CaseMatch::OtherSsn,
            _ => CaseMatch::NoSuchCase,
        }
    }
    fn obligors_with_ssn(&self, ssn: &Ssn) -> Vec<ObligorId> {
        let ids: &[&str] = match ssn.expose_digits() {
            "123456789" => &["OB-1"],
            "223456789" => &["OB-2"],
            "323456789" => &["OB-3", "OB-4"],
            _ => &[],
        };
        ids.iter().map(|id| ObligorId::parse(id).unwrap()).collect()
    }
}

fn received() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

fn line() -> RawLine {
    RawLine {
        line: 1,
        employer_fein: Some("43-1234567".into()),
        case_number: Some("12345678".into()),
        employee_ssn: Some("123-45-6789".into()),
        last_name: Some("Smith".into()),
        pay_date: Some("2026-11-13".into()),
        pay_date_style: Some(DateStyle::IsoOrUs),
        amount: Some("184.62".into()),
        ..RawLine::default()
    }
}

fn codes(raw: &RawLine) -> (LineStatus, Vec<&'static str>) {
    let checked = check_line(raw, received(), &Registry);
    (checked.status, checked.problems.iter().map(|p| p.code.as_str()).collect())
}

macro_rules! rule {
    ($name:ident, |$l:ident| $change:expr, $status:expr, [$($code:literal),*]) => {
        #[test]
        #[allow(unused_mut)]
        fn $name() {
            let mut $l = line();
            $change;
            assert_eq!(codes(&$l), ($status, vec![$($code),*]));
        }
    };
}

use LineStatus::{Applied, AppliedBySsn, Rejected, Suspense};

rule!(a_known_case_with_its_ssn_is_applied, |l| (), Applied, []);
rule!(case_numbers_may_carry_spaces_and_dashes, |l| l.case_number = Some("1234-5678".into()), Applied, []);
rule!(an_empty_case_number_is_identified_by_ssn, |l| l.case_number = Some(String::new()), AppliedBySsn, ["IDENTIFIED_BY_SSN"]);
rule!(
    a_malformed_case_number_is_a_warning,
    |l| l.case_number = Some("1234567".into()),
    AppliedBySsn,
    ["CASE_NUMBER_INVALID", "IDENTIFIED_BY_SSN"]
);
rule!(
    an_unknown_case_number_is_a_warning,
    |l| l.case_number = Some("99999999".into()),
    AppliedBySsn,
    ["CASE_NUMBER_UNKNOWN", "IDENTIFIED_BY_SSN"]
);
rule!(
    unknown_case_and_ssn_go_to_suspense,
    |l| {
        l.case_number = Some("99999999".into());
        l.employee_ssn = Some("423-45-6789".into());
    },
    Suspense,
    ["CASE_NUMBER_UNKNOWN", "OBLIGOR_NOT_IDENTIFIED"]
);
rule!(a_case_whose_obligor_has_another_ssn_is_held, |l| l.employee_ssn = Some("223-45-6789".into()), Suspense, ["SSN_MISMATCH"]);
rule!(
    an_ssn_naming_several_parents_is_held,
    |l| {
        l.case_number = None;
        l.employee_ssn = Some("323-45-6789".into());
    },
    Suspense,
    ["SSN_MATCHES_SEVERAL"]
);
rule!(a_zero_amount_is_rejected, |l| l.amount = Some("0.00".into()), Rejected, ["AMOUNT_INVALID"]);
rule!(
    a_zero_amount_is_a_termination_notice_when_employment_ended,
    |l| {
        l.amount = Some("0.00".into());
        l.employment_terminated = Some("Y".into());
    },
    Applied,
    ["EMPLOYMENT_TERMINATED"]
);
rule!(a_termination_with_money_is_applied_and_noticed, |l| l.employment_terminated = Some("y".into()), Applied, ["EMPLOYMENT_TERMINATED"]);
rule!(three_decimals_are_rejected, |l| l.amount = Some("184.625".into()), Rejected, ["AMOUNT_INVALID"]);
rule!(a_negative_amount_is_rejected, |l| l.amount = Some("-5.00".into()), Rejected, ["AMOUNT_INVALID"]);
rule!(an_amount_over_the_maximum_is_rejected, |l| l.amount = Some("100000000.00".into()), Rejected, ["AMOUNT_INVALID"]);
rule!(the_maximum_amount_is_accepted, |l| l.amount = Some("99999999.99".into()), Applied, []);
rule!(a_missing_amount_is_rejected, |l| l.amount = None, Rejected, ["AMOUNT_INVALID"]);
rule!(a_pay_date_after_receipt_is_rejected, |l| l.pay_date = Some("2026-11-21".into()), Rejected, ["PAY_DATE_IN_FUTURE"]);
rule!(an_impossible_pay_date_is_rejected, |l| l.pay_date = Some("2026-02-30".into()), Rejected, ["PAY_DATE_INVALID"]);
rule!(the_us_date_form_is_accepted_in_csv, |l| l.pay_date = Some("11/13/2026".into()), Applied, []);
rule!(
    the_us_date_form_is_refused_in_xml,
    |l| {
        l.pay_date = Some("11/13/2026".into());
        l.pay_date_style = Some(DateStyle::Iso);
    },
    Rejected,
    ["PAY_DATE_INVALID"]
);
// Received Friday Nov 20, 2026. After a Tuesday Nov 10 pay date come 7 business days (Nov 11
// is Veterans Day): 12, 13, 16, 17, 18, 19, 20 — on time. After Monday Nov 9 come 8: late.
rule!(seven_business_days_are_on_time, |l| l.pay_date = Some("2026-11-10".into()), Applied, []);
rule!(more_than_seven_business_days_is_late, |l| l.pay_date = Some("2026-11-09".into()), Applied, ["LATE_REMITTANCE"]);
rule!(an_all_zero_ssn_is_rejected, |l| l.employee_ssn = Some("000-00-0000".into()), Rejected, ["SSN_INVALID"]);
rule!(an_ssn_beginning_with_9_is_rejected, |l| l.employee_ssn = Some("912-45-6789".into()), Rejected, ["SSN_INVALID"]);
rule!(an_ssn_beginning_with_666_is_rejected, |l| l.employee_ssn = Some("666-45-6789".into()), Rejected, ["SSN_INVALID"]);
rule!(a_short_ssn_is_rejected, |l| l.employee_ssn = Some("12345678".into()), Rejected, ["SSN_INVALID"]);
rule!(a_missing_ssn_is_rejected, |l| l.employee_ssn = Some(" ".into()), Rejected, ["SSN_INVALID"]);
rule!(a_missouri_fips_is_accepted, |l| l.fips_code = Some("29051".into()), Applied, []);
rule!(a_seven_digit_fips_is_accepted, |l| l.fips_code = Some("2905100".into()), Applied, []);
rule!(another_states_fips_is_rejected, |l| l.fips_code = Some("20051".into()), Rejected, ["FIPS_OTHER_STATE"]);
rule!(a_malformed_fips_is_rejected, |l| l.fips_code = Some("2905".into()), Rejected, ["FIPS_INVALID"]);
rule!(medical_support_w_is_accepted, |l| l.medical_support = Some("w".into()), Applied, []);
rule!(an_unknown_medical_flag_is_rejected, |l| l.medical_support = Some("X".into()), Rejected, ["MEDICAL_SUPPORT_INVALID"]);
rule!(an_unknown_termination_flag_is_rejected, |l| l.employment_terminated = Some("maybe".into()), Rejected, ["FLAG_INVALID"]);
rule!(a_medical_flag_is_one_letter_trimmed, |l| l.medical_support = Some(" y ".into()), Applied, []);
rule!(a_medical_flag_of_two_letters_is_rejected, |l| l.medical_support = Some("YY".into()), Rejected, ["MEDICAL_SUPPORT_INVALID"]);
rule!(an_empty_termination_flag_is_no, |l| l.employment_terminated = Some("  ".into()), Applied, []);
rule!(a_termination_flag_of_another_alphabet_is_rejected, |l| l.employment_terminated = Some("Ý".into()), Rejected, ["FLAG_INVALID"]);
rule!(a_bad_fein_is_rejected, |l| l.employer_fein = Some("43-123456".into()), Rejected, ["FEIN_INVALID"]);
rule!(a_missing_fein_is_rejected, |l| l.employer_fein = None, Rejected, ["FEIN_INVALID"]);
rule!(an_empty_last_name_is_rejected, |l| l.last_name = Some(" ".into()), Rejected, ["NAME_MISSING"]);
rule!(
    a_prenote_is_validated_and_carries_no_money,
    |l| {
        l.prenote = true;
        l.amount = Some("0.00".into());
    },
    Applied,
    ["PRENOTE"]
);
rule!(a_prenote_with_money_is_rejected, |l| l.prenote = true, Rejected, ["AMOUNT_INVALID"]);

#[test]
fn every_problem_of_a_line_is_reported_at_once() {
    let mut raw = line();
    raw.amount = Some("abc".into());
    raw.employee_ssn = Some("000000000".into());
    raw.fips_code = Some("36001".into());
    raw.pay_date = Some("2027-01-01".into());
    raw.line = 42;
    let checked = check_line(&raw, received(), &Registry);
    assert_eq!(checked.status, Rejected);
    let found: Vec<_> = checked.problems.iter().map(|p| (p.line, p.field, p.code.as_str())).collect();
    assert_eq!(
        found,
        [
            (42, "employee_ssn", "SSN_INVALID"),
            (42, "amount", "AMOUNT_INVALID"),
            (42, "pay_date", "PAY_DATE_IN_FUTURE"),
            (42, "fips_code", "FIPS_OTHER_STATE"),
        ]
    );
    assert!(checked.problems.iter().all(|p| p.severity() == Severity::Error));
}

#[test]
fn money_is_collected_only_from_identified_lines_with_money() {
    let applied = check_line(&line(), received(), &Registry);
    assert!(applied.collects_money() && !applied.held_in_suspense());
    let mut unknown = line();
    unknown.case_number = None;
    unknown.employee_ssn = Some("423-45-6789".into());
    let held = check_line(&unknown, received(), &Registry);
    assert!(!held.collects_money() && held.held_in_suspense());
    let mut notice = line();
    notice.amount = Some("0".into());
    notice.employment_terminated = Some("Y".into());
    let notice = check_line(&notice, received(), &Registry);
    assert!(!notice.collects_money() && notice.valid.unwrap().employment_terminated);
}

#[test]
fn no_message_ever_holds_a_full_ssn() {
    for ssn in ["123-45-6789", "223-45-6789", "323-45-6789", "423-45-6789", "000-45-6789", "12-345-6789"] {
        for case in [None, Some("12345678"), Some("99999999"), Some("123456789")] {
            let mut raw = line();
            raw.employee_ssn = Some(ssn.into());
            raw.case_number = case.map(Into::into);
            let checked = check_line(&raw, received(), &Registry);
            let digits: String = ssn.chars().filter(char::is_ascii_digit).collect();
            for problem in &checked.problems {
                assert!(!problem.message.contains(&digits) && !problem.message.contains(ssn), "{}", problem.message);
            }
        }
    }
}

#[test]
fn problem_codes_are_stable() {
    // Published codes never change: senders' systems match on them.
    let codes = [
        (ProblemCode::AmountInvalid, "AMOUNT_INVALID"),
        (ProblemCode::PayDateInFuture, "PAY_DATE_IN_FUTURE"),
        (ProblemCode::CaseNumberUnknown, "CASE_NUMBER_UNKNOWN"),
        (ProblemCode::SsnMismatch, "SSN_MISMATCH"),
        (ProblemCode::FipsOtherState, "FIPS_OTHER_STATE"),
        (ProblemCode::LateRemittance, "LATE_REMITTANCE"),
    ];
    for (code, text) in codes {
        assert_eq!(code.as_str(), text);
    }
}

/// Every problem code that a line can carry, raised through each format that can express
/// it: the file is written, parsed back and checked, so the format's mapping of its fields is
/// tested together with the rule.
mod through_each_format {
    use super::*;
    use gateway::domain::Money;
    use gateway::formats::csv_remittance::write_csv;
    use gateway::formats::nacha::writer::{ded_segment, write_file, EntryToWrite};
    use gateway::formats::xml_remittance::write_xml;
    use gateway::formats::{remittance_lines, DeclaredTotals, RemittanceFormat};

    #[derive(Clone, Copy, PartialEq)]
    enum Format {
        Csv,
        Xml,
        Nacha,
    }

    /// A line changed by `change`, checked after a trip through `format`.
    fn through(format: Format, change: impl Fn(&mut RawLine)) -> Vec<&'static str> {
        let mut raw = line();
        raw.fips_code = Some("29051".into());
        change(&mut raw);
        let bytes = match format {
            Format::Csv => write_csv(&[raw.clone()]),
            Format::Xml => write_xml("B-1", &[raw.clone()]),
            Format::Nacha => {
                // NACHA writes dates YYMMDD and takes the FEIN from the batch.
                if let Some(date) = raw.pay_date.clone().filter(|d| d.len() == 10) {
                    raw.pay_date = Some(date[2..].replace('-', ""));
                }
                let cents = raw.amount.as_deref().and_then(|a| Money::parse(a).ok()).map_or(0, |m| m.cents() as u64);
                let entry =
                    EntryToWrite { routing: 91_000_019, amount_cents: cents, prenote: raw.prenote, segments: vec![ded_segment(&raw)] };
                write_file("CCD", "ACME", raw.employer_fein.as_deref().unwrap_or("431234567").replace('-', "").as_str(), &[entry])
            }
        };
        let kind = match format {
            Format::Csv => RemittanceFormat::Csv,
            Format::Xml => RemittanceFormat::Xml,
            Format::Nacha => RemittanceFormat::Nacha,
        };
        let lines: Vec<RawLine> =
            remittance_lines(kind, std::io::Cursor::new(bytes), DeclaredTotals::default(), "B-1", gateway::formats::FileLimits::STANDARD)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let checked = check_line(&lines[0], received(), &Registry);
        checked.problems.iter().map(|p| p.code.as_str()).collect()
    }

    type Change = fn(&mut RawLine);

    #[test]
    fn every_code_in_every_format_that_can_carry_it() {
        use Format::*;
        let table: [(&str, Change, &[Format]); 20] = [
            ("AMOUNT_INVALID", |l| l.amount = Some("0.00".into()), &[Csv, Xml, Nacha]),
            ("PAY_DATE_INVALID", |l| l.pay_date = Some("2026-02-30".into()), &[Csv, Xml, Nacha]),
            ("PAY_DATE_IN_FUTURE", |l| l.pay_date = Some("2026-12-01".into()), &[Csv, Xml, Nacha]),
            ("SSN_INVALID", |l| l.employee_ssn = Some("666456789".into()), &[Csv, Xml, Nacha]),
            ("FEIN_INVALID", |l| l.employer_fein = Some("4312345".into()), &[Csv, Xml, Nacha]),
            ("NAME_MISSING", |l| l.last_name = Some(String::new()), &[Csv, Xml]),
            ("FIPS_INVALID", |l| l.fips_code = Some("2905".into()), &[Csv, Xml, Nacha]),
            ("FIPS_OTHER_STATE", |l| l.fips_code = Some("17031".into()), &[Csv, Xml, Nacha]),
            ("MEDICAL_SUPPORT_INVALID", |l| l.medical_support = Some("Q".into()), &[Csv, Xml, Nacha]),
            ("FLAG_INVALID", |l| l.employment_terminated = Some("Q".into()), &[Csv, Xml, Nacha]),
            ("CASE_NUMBER_INVALID", |l| l.case_number = Some("1234".into()), &[Csv, Xml, Nacha]),
            ("CASE_NUMBER_UNKNOWN", |l| l.case_number = Some("99999999".into()), &[Csv, Xml, Nacha]),
            ("IDENTIFIED_BY_SSN", |l| l.case_number = Some(String::new()), &[Csv, Xml, Nacha]),
            ("LATE_REMITTANCE", |l| l.pay_date = Some("2026-10-01".into()), &[Csv, Xml, Nacha]),
            ("SSN_MISMATCH", |l| l.employee_ssn = Some("223456789".into()), &[Csv, Xml, Nacha]),
            (
                "SSN_MATCHES_SEVERAL",
                |l| {
                    l.case_number = Some(String::new());
                    l.employee_ssn = Some("323456789".into());
                },
                &[Csv, Xml, Nacha],
            ),
            (
                "OBLIGOR_NOT_IDENTIFIED",
                |l| {
                    l.case_number = Some(String::new());
                    l.employee_ssn = Some("423456789".into());
                },
                &[Csv, Xml, Nacha],
            ),
            ("EMPLOYMENT_TERMINATED", |l| l.employment_terminated = Some("Y".into()), &[Csv, Xml, Nacha]),
            (
                "PRENOTE",
                |l| {
                    l.prenote = true;
                    l.amount = Some("0.00".into());
                },
                &[Nacha],
            ),
            // Only where no control total is declared: an amount that cannot be read makes an
            // XML file's TotalAmount uncheckable, which refuses the whole file instead.
            ("AMOUNT_INVALID", |l| l.amount = Some("1.005".into()), &[Csv]),
        ];
        for (code, change, formats) in table {
            for format in [Csv, Xml, Nacha].into_iter().filter(|f| formats.contains(f)) {
                let codes = through(format, change);
                assert!(codes.contains(&code), "{code} through {}: got {codes:?}", ["CSV", "XML", "NACHA"][format as usize]);
            }
        }
    }
}
