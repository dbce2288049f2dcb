//! Rows of the case registry import (`case-registry.md`), parsed and checked.
//!
//! A row becomes a [`RegistryRow`] only when every field is valid; otherwise every problem of
//! the row is returned, each with its line and column, so that one answer lists them all.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::codes::{CodeKind, ProblemCode};
use super::distribution::Order;
use super::ids::{CaseNumber, Fein, ObligorId, OrderId, Ssn};
use super::money::Money;
use super::month::{parse_iso_date, YearMonth};

/// The registry's columns, in the spec's order.
pub const COLUMNS: [&str; 15] = [
    "obligor_id",
    "obligor_ssn",
    "obligor_last_name",
    "obligor_first_name",
    "case_number",
    "order_id",
    "monthly_amount",
    "start_month",
    "opening_arrears",
    "end_date",
    "employer_fein",
    "arrears_payment_monthly",
    "child_birth_date",
    "continuing_education",
    "impaired",
];

/// Columns a file may leave out.
const OPTIONAL_COLUMNS: [&str; 6] =
    ["end_date", "employer_fein", "arrears_payment_monthly", "child_birth_date", "continuing_education", "impaired"];

/// A stable problem code, with the line (header = line 1) and column it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryProblem {
    pub line: u64,
    pub field: &'static str,
    /// The string of a registry-problem [`ProblemCode`], as clients receive it; set only by
    /// [`RegistryProblem::new`].
    pub code: &'static str,
    pub message: String,
}

impl RegistryProblem {
    pub fn new(line: u64, field: &'static str, code: ProblemCode, message: impl Into<String>) -> Self {
        debug_assert!(code.is(CodeKind::RegistryProblem), "{code} is not a registry problem");
        RegistryProblem { line, field, code: code.as_str(), message: message.into() }
    }
}

/// One valid row: an order and what the gateway keeps of its obligor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRow {
    pub line: u64,
    pub obligor_id: ObligorId,
    pub ssn: Ssn,
    pub last_name: String,
    pub first_name: String,
    pub order: Order,
    pub employer_fein: Option<Fein>,
    /// The withholding order's payment toward arrears per month; 0 when the file has none.
    pub arrears_payment_monthly: Money,
    pub child_birth_date: Option<NaiveDate>,
    pub continuing_education: Option<bool>,
    pub impaired: Option<bool>,
}

/// The header of a registry file: which column holds which field.
#[derive(Clone, Debug)]
pub struct RegistryHeader {
    positions: HashMap<&'static str, usize>,
}

impl RegistryHeader {
    /// Reads the header row: names are case-insensitive and in any order; an unknown,
    /// repeated or missing required column refuses the file.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<RegistryHeader, Vec<RegistryProblem>> {
        let mut positions = HashMap::new();
        let mut problems = Vec::new();
        for (index, raw) in names.into_iter().enumerate() {
            let name = raw.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            match COLUMNS.iter().find(|c| **c == name) {
                Some(column) if positions.insert(*column, index).is_some() => problems.push(RegistryProblem::new(
                    1,
                    column,
                    ProblemCode::HeaderDuplicateColumn,
                    format!("column `{column}` appears twice"),
                )),
                Some(_) => {}
                None => problems.push(RegistryProblem::new(
                    1,
                    "",
                    ProblemCode::HeaderUnknownColumn,
                    format!("unknown column `{}`; the columns are: {}", super::excerpt(raw.trim()), COLUMNS.join(", ")),
                )),
            }
        }
        for column in COLUMNS.iter().filter(|c| !OPTIONAL_COLUMNS.contains(c)) {
            if !positions.contains_key(column) {
                problems.push(RegistryProblem::new(
                    1,
                    column,
                    ProblemCode::HeaderMissingColumn,
                    format!("required column `{column}` is missing"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(RegistryHeader { positions })
        } else {
            Err(problems)
        }
    }

    pub fn width(&self) -> usize {
        self.positions.len()
    }

    /// Parses one data row (its fields in file order) found at `line`.
    pub fn parse_row(&self, line: u64, fields: &[&str]) -> Result<RegistryRow, Vec<RegistryProblem>> {
        if fields.len() != self.width() {
            return Err(vec![RegistryProblem::new(
                line,
                "",
                ProblemCode::RowFieldCount,
                format!("the row has {} fields but the header has {}", fields.len(), self.width()),
            )]);
        }
        let mut row = RowParser { line, fields, header: self, problems: Vec::new() };
        let obligor_id = row.required("obligor_id", ProblemCode::ObligorIdInvalid, ObligorId::parse);
        let ssn = row.required("obligor_ssn", ProblemCode::SsnInvalid, Ssn::parse);
        let last_name = row.required("obligor_last_name", ProblemCode::NameInvalid, parse_name);
        let first_name = row.required("obligor_first_name", ProblemCode::NameInvalid, parse_name);
        let case_number = row.required("case_number", ProblemCode::CaseNumberInvalid, parse_case_number);
        let order_id = row.required("order_id", ProblemCode::OrderIdInvalid, OrderId::parse);
        let monthly_amount = row.required("monthly_amount", ProblemCode::AmountInvalid, Money::parse);
        let start_month = row.required("start_month", ProblemCode::MonthInvalid, YearMonth::parse);
        let opening_arrears = row.required("opening_arrears", ProblemCode::AmountInvalid, Money::parse);
        let end_date = row.optional("end_date", ProblemCode::DateInvalid, parse_date);
        let employer_fein = row.optional("employer_fein", ProblemCode::FeinInvalid, Fein::parse);
        let arrears_payment = row.optional("arrears_payment_monthly", ProblemCode::AmountInvalid, Money::parse);
        let child_birth_date = row.optional("child_birth_date", ProblemCode::DateInvalid, parse_date);
        let continuing_education = row.optional("continuing_education", ProblemCode::FlagInvalid, parse_flag);
        let impaired = row.optional("impaired", ProblemCode::FlagInvalid, parse_flag);
        let problems = row.problems;

        match (obligor_id, ssn, last_name, first_name, case_number, order_id, monthly_amount, start_month, opening_arrears) {
            (
                Some(obligor_id),
                Some(ssn),
                Some(last_name),
                Some(first_name),
                Some(case_number),
                Some(id),
                Some(monthly_amount),
                Some(start_month),
                Some(opening_arrears),
            ) if problems.is_empty() => Ok(RegistryRow {
                line,
                obligor_id,
                ssn,
                last_name,
                first_name,
                order: Order { id, case_number, monthly_amount, start_month, opening_arrears, end_date: end_date.flatten() },
                employer_fein: employer_fein.flatten(),
                arrears_payment_monthly: arrears_payment.flatten().unwrap_or_default(),
                child_birth_date: child_birth_date.flatten(),
                continuing_education: continuing_education.flatten(),
                impaired: impaired.flatten(),
            }),
            _ => Err(problems),
        }
    }
}

/// Collects the problems of one row while its fields are parsed.
struct RowParser<'a> {
    line: u64,
    fields: &'a [&'a str],
    header: &'a RegistryHeader,
    problems: Vec<RegistryProblem>,
}

impl<'a> RowParser<'a> {
    fn value(&self, column: &str) -> Option<&'a str> {
        let fields: &'a [&'a str] = self.fields;
        self.header.positions.get(column).map(|&i| fields[i].trim())
    }

    fn required<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        code: ProblemCode,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        match self.value(column) {
            None | Some("") => {
                self.problems.push(RegistryProblem::new(self.line, column, ProblemCode::FieldRequired, format!("`{column}` is required")));
                None
            }
            Some(text) => self.parsed(column, code, text, parse),
        }
    }

    /// `Some(None)` for an empty or absent optional field.
    fn optional<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        code: ProblemCode,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.value(column) {
            None | Some("") => Some(None),
            Some(text) => self.parsed(column, code, text, parse).map(Some),
        }
    }

    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        code: ProblemCode,
        text: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(text) {
            Ok(value) => Some(value),
            Err(error) => {
                // The message never repeats the value: it may be an SSN.
                self.problems.push(RegistryProblem::new(self.line, column, code, format!("`{column}`: {error}")));
                None
            }
        }
    }
}

/// The registry's case numbers are exactly 8 digits (no separators, unlike payroll lines).
fn parse_case_number(text: &str) -> Result<CaseNumber, &'static str> {
    if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        CaseNumber::parse(text).map_err(|_| "a case number has 8 digits")
    } else {
        Err("a case number has 8 digits")
    }
}

fn parse_name(text: &str) -> Result<String, &'static str> {
    if text.chars().count() <= 100 && !text.chars().any(char::is_control) {
        Ok(text.to_owned())
    } else {
        Err("a name is at most 100 printable characters")
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, &'static str> {
    parse_iso_date(text).ok_or("a date is a real calendar date written YYYY-MM-DD")
}

fn parse_flag(text: &str) -> Result<bool, &'static str> {
    match text {
        "Y" | "y" => Ok(true),
        "N" | "n" => Ok(false),
        _ => Err("the value is Y or N"),
    }
}

/// Checks the rules that span rows: order ids are unique, a case belongs to one obligor, an
/// obligor has one SSN (and one name). Returns every violation, each on the later line.
pub fn check_rows_agree(rows: &[RegistryRow]) -> Vec<RegistryProblem> {
    let mut problems = Vec::new();
    let mut orders: HashMap<&OrderId, u64> = HashMap::new();
    let mut case_owner: HashMap<&CaseNumber, (&ObligorId, u64)> = HashMap::new();
    let mut obligors: HashMap<&ObligorId, (&RegistryRow, u64)> = HashMap::new();
    for row in rows {
        if let Some(first) = orders.insert(&row.order.id, row.line) {
            problems.push(RegistryProblem::new(
                row.line,
                "order_id",
                ProblemCode::OrderIdDuplicate,
                format!("order `{}` already appears on line {first}", row.order.id),
            ));
            orders.insert(&row.order.id, first);
        }
        match case_owner.get(&row.order.case_number) {
            Some((owner, first)) if *owner != &row.obligor_id => problems.push(RegistryProblem::new(
                row.line,
                "case_number",
                ProblemCode::CaseOwnerConflict,
                format!("case {} belongs to obligor `{owner}` on line {first}, not to `{}`", row.order.case_number, row.obligor_id),
            )),
            Some(_) => {}
            None => {
                case_owner.insert(&row.order.case_number, (&row.obligor_id, row.line));
            }
        }
        match obligors.get(&row.obligor_id) {
            Some((first, first_line)) => {
                if first.ssn != row.ssn {
                    problems.push(RegistryProblem::new(
                        row.line,
                        "obligor_ssn",
                        ProblemCode::ObligorSsnConflict,
                        format!("obligor `{}` has a different SSN on line {first_line}", row.obligor_id),
                    ));
                }
                if first.last_name != row.last_name || first.first_name != row.first_name {
                    problems.push(RegistryProblem::new(
                        row.line,
                        "obligor_last_name",
                        ProblemCode::ObligorNameConflict,
                        format!("obligor `{}` has a different name on line {first_line}", row.obligor_id),
                    ));
                }
            }
            None => {
                obligors.insert(&row.obligor_id, (row, row.line));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [&str; 9] = [
        "OBLIGOR_ID",
        "obligor_ssn",
        "obligor_last_name",
        "obligor_first_name",
        "case_number",
        "order_id",
        "monthly_amount",
        "start_month",
        "opening_arrears",
    ];

    fn header() -> RegistryHeader {
        RegistryHeader::parse(HEADER).unwrap()
    }

    fn row(line: u64, obligor: &str, ssn: &str, case: &str, order: &str) -> RegistryRow {
        header().parse_row(line, &[obligor, ssn, "Smith", "John", case, order, "300.00", "2026-11", "100.00"]).unwrap()
    }

    #[test]
    fn header_names_are_case_insensitive_and_unknown_or_missing_columns_refuse_the_file() {
        assert_eq!(header().width(), 9);
        let problems = RegistryHeader::parse(["obligor_id", "obligor_snn", "\u{feff}case_number"]).unwrap_err();
        let codes: Vec<_> = problems.iter().map(|p| p.code).collect();
        assert!(codes.contains(&"HEADER_UNKNOWN_COLUMN"));
        assert!(problems.iter().any(|p| p.code == "HEADER_MISSING_COLUMN" && p.field == "obligor_ssn"));
        assert!(!problems.iter().any(|p| p.field == "case_number"), "a BOM before a name is allowed");
    }

    #[test]
    fn a_valid_row_becomes_an_order() {
        let row = row(2, "OB1", "123-45-6789", "12345678", "ORD-1");
        assert_eq!(row.order.monthly_amount, Money::from_cents(30000));
        assert_eq!(row.order.start_month.to_string(), "2026-11");
        assert_eq!(row.ssn.last4(), "6789");
        assert_eq!(row.order.end_date, None);
    }

    #[test]
    fn every_problem_of_a_row_is_reported_without_the_ssn() {
        let problems =
            header().parse_row(7, &["", "123-45-678", "Smith", "John", "1234567", "ORD-1", "3.001", "2026-13", "-1"]).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| (p.field, p.code)).collect();
        assert_eq!(
            fields,
            [
                ("obligor_id", "FIELD_REQUIRED"),
                ("obligor_ssn", "SSN_INVALID"),
                ("case_number", "CASE_NUMBER_INVALID"),
                ("monthly_amount", "AMOUNT_INVALID"),
                ("start_month", "MONTH_INVALID"),
                ("opening_arrears", "AMOUNT_INVALID"),
            ]
        );
        assert!(problems.iter().all(|p| p.line == 7));
        assert!(problems.iter().all(|p| !p.message.contains("12345678")));
    }

    #[test]
    fn rows_must_agree_on_case_owners_ssns_and_order_ids() {
        let rows = [
            row(2, "OB1", "123-45-6789", "12345678", "ORD-1"),
            row(3, "OB2", "223-45-6789", "12345678", "ORD-2"),
            row(4, "OB1", "323-45-6789", "22345678", "ORD-1"),
        ];
        let problems = check_rows_agree(&rows);
        let found: Vec<_> = problems.iter().map(|p| (p.line, p.code)).collect();
        assert_eq!(found, [(3, "CASE_OWNER_CONFLICT"), (4, "ORDER_ID_DUPLICATE"), (4, "OBLIGOR_SSN_CONFLICT")]);
    }
}
