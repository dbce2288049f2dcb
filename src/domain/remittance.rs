//! Remittance lines and the line rules (`remittance-formats.md`).
//!
//! Every format parser produces [`RawLine`]s: the fields as the file wrote them, with the
//! line's position. [`check_line`] applies every rule, collects every problem (not the first
//! only), and identifies the obligor through an [`ObligorDirectory`] — a lookup the
//! application implements over the registry. Nothing here does I/O.

use chrono::NaiveDate;

use super::calendar::more_than_business_days_between;
use super::codes::CodeKind;
use super::ids::{CaseNumber, Fein, ObligorId, Ssn};
use super::money::{Money, MoneyError};
use super::month::parse_iso_date;

// A line's problem codes are among all the gateway's codes (`codes`), still importable here.
pub use super::codes::{ProblemCode, Severity};

/// How a format writes its pay dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateStyle {
    /// `YYYY-MM-DD` or `MM/DD/YYYY` (CSV).
    IsoOrUs,
    /// `YYYY-MM-DD` only (XML).
    Iso,
    /// `YYMMDD` (NACHA CCD+ DED03).
    Yymmdd,
    /// `CCYYMMDD` (NACHA CTX DED03).
    Ccyymmdd,
}

/// A line as the file wrote it. `None` means the format has no such field or the file left
/// it out; the rules decide what is required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based: the data row (CSV), the `Payment` element (XML), the DED segment (NACHA).
    pub line: u64,
    /// For NACHA, the physical record number of the entry, for messages.
    pub record: Option<u64>,
    pub employer_fein: Option<String>,
    pub employer_name: Option<String>,
    pub case_number: Option<String>,
    pub employee_ssn: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub employee_id: Option<String>,
    pub pay_date: Option<String>,
    pub pay_date_style: Option<DateStyle>,
    /// A decimal amount such as `184.62` (NACHA's implied decimals are made explicit).
    pub amount: Option<String>,
    pub fips_code: Option<String>,
    pub medical_support: Option<String>,
    pub employment_terminated: Option<String>,
    /// A NACHA zero-dollar prenote (transaction code 23 or 33): validated, no money.
    pub prenote: bool,
    /// Problems the format found in this line itself (a malformed DED segment, an entry
    /// amount that disagrees with its DED amounts): added to the rules' own.
    pub format_problems: Vec<FormatProblem>,
}

/// A line-level problem found by a format parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatProblem {
    pub field: &'static str,
    pub code: ProblemCode,
    pub message: String,
}

/// One problem of one line. The message never holds a full SSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    pub line: u64,
    /// The spec's column name (`amount`, `employee_ssn`, …).
    pub field: &'static str,
    pub code: ProblemCode,
    pub message: String,
}

impl LineProblem {
    pub fn severity(&self) -> Severity {
        // Only line-problem codes are put on a line (`Problems::add` checks it in tests and
        // debug builds); were another to slip through, it is reported as an error, not hidden.
        self.code.severity().unwrap_or(Severity::Error)
    }
}

/// What became of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStatus {
    Applied,
    AppliedBySsn,
    Suspense,
    Rejected,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Applied => "APPLIED",
            LineStatus::AppliedBySsn => "APPLIED_BY_SSN",
            LineStatus::Suspense => "SUSPENSE",
            LineStatus::Rejected => "REJECTED",
        }
    }
}

/// The registry, as the line rules need it.
pub trait ObligorDirectory {
    /// Who owns a line's case, and whether that obligor's SSN is the line's.
    fn case_with_ssn(&self, case: &CaseNumber, ssn: &Ssn) -> CaseMatch;
    /// Every obligor with this SSN.
    fn obligors_with_ssn(&self, ssn: &Ssn) -> Vec<ObligorId>;
}

/// What the registry says of a line's case number and SSN together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseMatch {
    /// The registry has no such case.
    NoSuchCase,
    /// The case's obligor, whose SSN is the line's.
    SsnMatches(ObligorId),
    /// The case's obligor has another SSN than the line's.
    OtherSsn,
}

/// Medical support indicator: Y (coverage available), N (none), W (not applicable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MedicalSupport {
    Yes,
    No,
    NotApplicable,
}

/// A line's fields once valid. Present only when the line was not rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidLine {
    pub employer_fein: Fein,
    pub case_number: Option<CaseNumber>,
    pub ssn: Ssn,
    pub pay_date: NaiveDate,
    pub amount: Money,
    pub fips_code: Option<String>,
    pub medical_support: MedicalSupport,
    pub employment_terminated: bool,
}

/// A line after the rules: its status, every problem, and (unless rejected) its values and
/// the obligor it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedLine {
    pub line: u64,
    pub status: LineStatus,
    pub problems: Vec<LineProblem>,
    pub valid: Option<ValidLine>,
    pub obligor: Option<ObligorId>,
    /// The case number as the file wrote it, spaces and dashes removed when it is valid.
    pub case_number_received: Option<String>,
    pub ssn_last4: Option<String>,
    pub prenote: bool,
}

impl CheckedLine {
    /// Whether the line brings money to an identified obligor.
    pub fn collects_money(&self) -> bool {
        matches!(self.status, LineStatus::Applied | LineStatus::AppliedBySsn)
            && !self.prenote
            && self.valid.as_ref().is_some_and(|v| v.amount.is_positive())
    }

    /// Whether the line's money is held in suspense.
    pub fn held_in_suspense(&self) -> bool {
        self.status == LineStatus::Suspense && !self.prenote && self.valid.as_ref().is_some_and(|v| v.amount.is_positive())
    }
}

/// Rejects a line whose employer is not one of `allowed`: an employer's key remits only for
/// its own FEINs, so money it sends for another employer's employees is not taken in.
pub fn restrict_to_employers(mut checked: CheckedLine, allowed: &[Fein]) -> CheckedLine {
    let Some(fein) = checked.valid.as_ref().map(|v| v.employer_fein.clone()) else {
        return checked; // Already rejected.
    };
    if allowed.contains(&fein) {
        return checked;
    }
    checked.problems.push(LineProblem {
        line: checked.line,
        field: "employer_fein",
        code: ProblemCode::FeinNotAuthorized,
        message: format!("this sender may remit only for its own FEINs, not {fein}"),
    });
    checked.status = LineStatus::Rejected;
    checked.valid = None;
    checked.obligor = None;
    checked
}

/// Federal law gives employers 7 business days from pay date to remit.
pub const REMITTANCE_DEADLINE_BUSINESS_DAYS: u32 = 7;

/// Missouri's FIPS state code.
pub const MISSOURI_FIPS: &str = "29";

/// Applies every line rule to `raw`, received on `received_on`.
pub fn check_line(raw: &RawLine, received_on: NaiveDate, directory: &impl ObligorDirectory) -> CheckedLine {
    let mut found = Problems { line: raw.line, list: Vec::new() };
    for problem in &raw.format_problems {
        found.add(problem.field, problem.code, problem.message.clone());
    }

    let fein = match raw.employer_fein.as_deref().map(str::trim) {
        Some(text) => Fein::parse(text).map_err(|e| found.add("employer_fein", ProblemCode::FeinInvalid, e.to_string())).ok(),
        None => {
            found.add("employer_fein", ProblemCode::FeinInvalid, "the employer's FEIN is missing".to_owned());
            None
        }
    };
    if raw.last_name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        found.add("employee_last_name", ProblemCode::NameMissing, "the employee's last name is required".to_owned());
    }
    let ssn = match raw.employee_ssn.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            Ssn::parse(text).map_err(|e| found.add("employee_ssn", ProblemCode::SsnInvalid, e.to_string())).ok()
        }
        _ => {
            found.add("employee_ssn", ProblemCode::SsnInvalid, "the employee's SSN is required".to_owned());
            None
        }
    };
    let terminated = match flag(raw.employment_terminated.as_deref()) {
        Ok(value) => value,
        Err(()) => {
            found.add("employment_terminated", ProblemCode::FlagInvalid, "employment_terminated is Y or N".to_owned());
            false
        }
    };
    let medical_support = match raw.medical_support.as_deref().map(one_letter_flag) {
        None | Some(Some(None | Some(b'N'))) => Some(MedicalSupport::No),
        Some(Some(Some(b'Y'))) => Some(MedicalSupport::Yes),
        Some(Some(Some(b'W'))) => Some(MedicalSupport::NotApplicable),
        Some(_) => {
            found.add("medical_support", ProblemCode::MedicalSupportInvalid, "medical_support is Y, N or W".to_owned());
            None
        }
    };
    let amount = check_amount(raw, terminated).map_err(|message| found.add("amount", ProblemCode::AmountInvalid, message)).ok();
    let pay_date = match parse_pay_date(raw) {
        Some(date) if date > received_on => {
            found.add(
                "pay_date",
                ProblemCode::PayDateInFuture,
                format!("the pay date {date} is after the day the file was received ({received_on})"),
            );
            None
        }
        Some(date) => Some(date),
        None => {
            found.add("pay_date", ProblemCode::PayDateInvalid, "the pay date is not a real calendar date in the format's form".to_owned());
            None
        }
    };
    let fips_code = match raw.fips_code.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(code) if !(code.len() == 5 || code.len() == 7) || !code.bytes().all(|b| b.is_ascii_digit()) => {
            found.add("fips_code", ProblemCode::FipsInvalid, "a FIPS code has 5 or 7 digits".to_owned());
            None
        }
        Some(code) if !code.starts_with(MISSOURI_FIPS) => {
            found.add(
                "fips_code",
                ProblemCode::FipsOtherState,
                format!("FIPS code {code} is another state's: send this payment to that state's disbursement unit"),
            );
            None
        }
        Some(code) => Some(Some(code.to_owned())),
    };

    let ssn_last4 = ssn.as_ref().map(|s| s.last4().to_owned());
    let case_text = raw.case_number.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let case_number = case_text.and_then(|c| CaseNumber::parse(c).ok());
    let case_number_received = case_number.as_ref().map(|c| c.to_string()).or_else(|| case_text.map(str::to_owned));

    let valid = match (fein, ssn, amount, pay_date, fips_code, medical_support) {
        (Some(employer_fein), Some(ssn), Some(amount), Some(pay_date), Some(fips_code), Some(medical_support)) if found.list.is_empty() => {
            Some(ValidLine {
                employer_fein,
                case_number,
                ssn,
                pay_date,
                amount,
                fips_code,
                medical_support,
                employment_terminated: terminated,
            })
        }
        _ => None,
    };
    let Some(valid) = valid else {
        return CheckedLine {
            line: raw.line,
            status: LineStatus::Rejected,
            problems: found.list,
            valid: None,
            obligor: None,
            case_number_received,
            ssn_last4,
            prenote: raw.prenote,
        };
    };

    if more_than_business_days_between(valid.pay_date, received_on, REMITTANCE_DEADLINE_BUSINESS_DAYS) {
        found.add(
            "pay_date",
            ProblemCode::LateRemittance,
            format!("received more than {REMITTANCE_DEADLINE_BUSINESS_DAYS} business days after the pay date {}", valid.pay_date),
        );
    }
    let (status, obligor) = identify(&valid, case_text, directory, &mut found);
    if valid.employment_terminated {
        found.add("employment_terminated", ProblemCode::EmploymentTerminated, "recorded as a termination notice for the agency".to_owned());
    }
    if raw.prenote {
        found.add("amount", ProblemCode::Prenote, "a prenote: validated, no money recorded".to_owned());
    }
    CheckedLine {
        line: raw.line,
        status,
        problems: found.list,
        valid: Some(valid),
        obligor,
        case_number_received,
        ssn_last4,
        prenote: raw.prenote,
    }
}

/// The problems of one line, as they are found.
struct Problems {
    line: u64,
    list: Vec<LineProblem>,
}

impl Problems {
    fn add(&mut self, field: &'static str, code: ProblemCode, message: String) {
        debug_assert!(code.is(CodeKind::LineProblem), "{code} is not a line problem");
        self.list.push(LineProblem { line: self.line, field, code, message });
    }
}

/// Case number first; then the SSN when the case number is empty, malformed or unknown.
fn identify(
    line: &ValidLine,
    case_text: Option<&str>,
    directory: &impl ObligorDirectory,
    found: &mut Problems,
) -> (LineStatus, Option<ObligorId>) {
    match (&line.case_number, case_text) {
        (Some(case), _) => match directory.case_with_ssn(case, &line.ssn) {
            CaseMatch::SsnMatches(obligor) => return (LineStatus::Applied, Some(obligor)),
            CaseMatch::OtherSsn => {
                found.add(
                    "employee_ssn",
                    ProblemCode::SsnMismatch,
                    format!("case {case} belongs to a parent with another SSN than {}: held for review", line.ssn.masked()),
                );
                return (LineStatus::Suspense, None);
            }
            CaseMatch::NoSuchCase => {
                found.add("case_number", ProblemCode::CaseNumberUnknown, format!("case {case} is not known to the agency"))
            }
        },
        (None, Some(_)) => found.add("case_number", ProblemCode::CaseNumberInvalid, "a case number has 8 digits".to_owned()),
        (None, None) => {}
    }
    match directory.obligors_with_ssn(&line.ssn).as_slice() {
        [obligor] => {
            found.add(
                "case_number",
                ProblemCode::IdentifiedBySsn,
                "identified by the employee's SSN: please correct the case number in your records".to_owned(),
            );
            (LineStatus::AppliedBySsn, Some(obligor.clone()))
        }
        [] => {
            found.add(
                "case_number",
                ProblemCode::ObligorNotIdentified,
                "neither the case number nor the SSN identify a parent: held for review".to_owned(),
            );
            (LineStatus::Suspense, None)
        }
        _ => {
            found.add("employee_ssn", ProblemCode::SsnMatchesSeveral, "the SSN matches more than one parent: held for review".to_owned());
            (LineStatus::Suspense, None)
        }
    }
}

fn flag(text: Option<&str>) -> Result<bool, ()> {
    match text.map(one_letter_flag) {
        None | Some(Some(None | Some(b'N'))) => Ok(false),
        Some(Some(Some(b'Y'))) => Ok(true),
        Some(_) => Err(()),
    }
}

/// A one-letter field, trimmed, in upper case: `Some(None)` when empty, `None` when it is
/// more than one byte (two letters, or any one that is not ASCII: no value of these is).
fn one_letter_flag(text: &str) -> Option<Option<u8>> {
    match text.trim().as_bytes() {
        [] => Some(None),
        [letter] => Some(Some(letter.to_ascii_uppercase())),
        _ => None,
    }
}

/// amount: > 0, at most 2 places, at most 99,999,999.99; 0 only on a termination notice
/// (or a prenote, which carries no money by definition).
fn check_amount(raw: &RawLine, terminated: bool) -> Result<Money, String> {
    let text = raw.amount.as_deref().map(str::trim).unwrap_or("");
    let amount = Money::parse(text).map_err(|error| match error {
        MoneyError::Empty => "the amount is required".to_owned(),
        other => other.to_string(),
    })?;
    if raw.prenote {
        return if amount.is_zero() { Ok(amount) } else { Err("a prenote carries no money".to_owned()) };
    }
    if amount > Money::MAX_LINE_AMOUNT {
        return Err("the amount is above 99999999.99".to_owned());
    }
    if amount.is_zero() && !terminated {
        return Err("the amount must be above 0.00 (0.00 only on a termination notice)".to_owned());
    }
    Ok(amount)
}

fn parse_pay_date(raw: &RawLine) -> Option<NaiveDate> {
    let text = raw.pay_date.as_deref()?.trim();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match raw.pay_date_style.unwrap_or(DateStyle::Iso) {
        DateStyle::Iso => parse_iso_date(text),
        DateStyle::IsoOrUs => parse_iso_date(text).or_else(|| {
            let parts: Vec<&str> = text.split('/').collect();
            match parts.as_slice() {
                [m, d, y] if m.len() == 2 && d.len() == 2 && y.len() == 4 && [m, d, y].iter().all(|p| all_digits(p)) => {
                    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
                }
                _ => None,
            }
        }),
        // A two-digit year is this century: payroll files are never about the 1900s.
        DateStyle::Yymmdd if text.len() == 6 && all_digits(text) => {
            NaiveDate::from_ymd_opt(2000 + text[..2].parse::<i32>().ok()?, text[2..4].parse().ok()?, text[4..].parse().ok()?)
        }
        DateStyle::Ccyymmdd if text.len() == 8 && all_digits(text) => {
            NaiveDate::from_ymd_opt(text[..4].parse().ok()?, text[4..6].parse().ok()?, text[6..].parse().ok()?)
        }
        DateStyle::Yymmdd | DateStyle::Ccyymmdd => None,
    }
}

/// How many lines of a file came out each way, and the money they carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineCounts {
    pub line_count: u64,
    pub total: Money,
    pub applied: u64,
    pub applied_by_ssn: u64,
    pub suspense: u64,
    pub rejected: u64,
}
