//! The case registry CSV (`case-registry.md`): header row, RFC 4180 quoting, UTF-8 (a BOM is
//! allowed), column order free, names case-insensitive.
//!
//! The file is read as a stream, one record at a time; every problem of every row is
//! collected so that one answer lists them all. Only valid rows are kept in memory.

use std::io::Read;

use super::bounded::{is_too_long, Budgeted};
use super::FileLimits;
use crate::domain::codes::ProblemCode;
use crate::domain::registry::{check_rows_agree, RegistryHeader, RegistryProblem, RegistryRow};

/// At most this many problems are listed; past it the file is clearly not a registry.
pub const MAX_PROBLEMS: usize = 1000;

/// Reads a whole registry file: every valid row, or every problem found.
pub fn read_registry(input: impl Read, limits: FileLimits) -> Result<Vec<RegistryRow>, Vec<RegistryProblem>> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(Budgeted::new(input, limits.max_record_bytes));
    let mut record = csv::ByteRecord::new();
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut header: Option<RegistryHeader> = None;
    // A row's line is its record number with the header as line 1, as a spreadsheet numbers
    // rows. (The csv crate's own line count drifts on CRLF files, so it is not used.)
    let mut line: u64 = 0;

    loop {
        line += 1;
        let read = reader.read_byte_record(&mut record);
        reader.get_mut().mark();
        match read {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) if matches!(error.kind(), csv::ErrorKind::Io(io) if is_too_long(io)) => {
                let limit = limits.max_record_bytes;
                problems.push(RegistryProblem::new(line, "", ProblemCode::RecordTooLong, format!("a row is longer than {limit} bytes")));
                break;
            }
            Err(error) => {
                problems.push(RegistryProblem::new(
                    line,
                    "",
                    ProblemCode::FileNotCsv,
                    format!("the file cannot be read as CSV: {}", csv_error_kind(&error)),
                ));
                break;
            }
        }
        if record.as_slice().len() > limits.max_record_bytes {
            let limit = limits.max_record_bytes;
            problems.push(RegistryProblem::new(line, "", ProblemCode::RecordTooLong, format!("a row is longer than {limit} bytes")));
            break;
        }
        // The header is line 1, so a file of `max_lines` rows ends on line `max_lines + 1`.
        if line > limits.max_lines.saturating_add(1) {
            let limit = limits.max_lines;
            problems.push(RegistryProblem::new(
                line,
                "",
                ProblemCode::TooManyLines,
                format!("the file has more than {limit} rows, the gateway's limit"),
            ));
            break;
        }
        let Ok(fields) = record.iter().map(std::str::from_utf8).collect::<Result<Vec<_>, _>>() else {
            problems.push(RegistryProblem::new(line, "", ProblemCode::FileNotUtf8, "the row is not valid UTF-8"));
            continue;
        };
        match &header {
            None => match RegistryHeader::parse(fields.iter().copied()) {
                Ok(parsed) => header = Some(parsed),
                Err(header_problems) => {
                    problems.extend(header_problems);
                    break;
                }
            },
            Some(_) if fields.iter().all(|f| f.trim().is_empty()) => {} // a row of empty cells
            Some(header) => match header.parse_row(line, &fields) {
                Ok(row) => rows.push(row),
                Err(row_problems) => problems.extend(row_problems),
            },
        }
        if problems.len() >= MAX_PROBLEMS {
            break;
        }
    }
    if header.is_none() && problems.is_empty() {
        problems.push(RegistryProblem::new(1, "", ProblemCode::HeaderMissing, "the file is empty: a registry starts with a header row"));
    }
    problems.extend(check_rows_agree(&rows));
    problems.sort_by_key(|p| p.line);
    problems.truncate(MAX_PROBLEMS);
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// Describes a CSV error without quoting the data (which may hold an SSN).
fn csv_error_kind(error: &csv::Error) -> &'static str {
    match error.kind() {
        csv::ErrorKind::Io(_) => "the upload was interrupted",
        csv::ErrorKind::Utf8 { .. } => "it is not valid UTF-8",
        _ => "malformed record",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears";

    #[test]
    fn reads_rows_with_quotes_bom_and_crlf() {
        let file = format!(
            "\u{feff}{HEADER}\r\nOB1,123-45-6789,\"O'Neil, Jr\",Pat,12345678,ORD-1,300.00,2026-11,100.00\r\n\
             OB1,123-45-6789,\"O'Neil, Jr\",Pat,12345678,ORD-2,1.00,2026-11,0\r\n"
        );
        let rows = read_registry(file.as_bytes(), FileLimits::STANDARD).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].last_name, "O'Neil, Jr");
        assert_eq!((rows[0].line, rows[1].line), (2, 3));
    }

    #[test]
    fn every_problem_is_listed_with_its_line_and_no_ssn() {
        let file = format!(
            "{HEADER}\nOB1,123-45-6789,Smith,John,12345678,ORD-1,300.00,2026-11,100.00\nOB2,12345678,Doe,Jane,2234567,ORD-2,x,2026-11,0\n\
             OB3,323-45-6789,Roe,Ann,12345678,ORD-3,1.00,2026-11,0\nOB4,423-45-6789,Poe,Al,32345678\n"
        );
        let problems = read_registry(file.as_bytes(), FileLimits::STANDARD).unwrap_err();
        let found: Vec<_> = problems.iter().map(|p| (p.line, p.field, p.code)).collect();
        assert_eq!(
            found,
            [
                (3, "obligor_ssn", "SSN_INVALID"),
                (3, "case_number", "CASE_NUMBER_INVALID"),
                (3, "monthly_amount", "AMOUNT_INVALID"),
                (4, "case_number", "CASE_OWNER_CONFLICT"),
                (5, "", "ROW_FIELD_COUNT"),
            ]
        );
        assert!(problems.iter().all(|p| !p.message.contains("12345678") || p.code == "CASE_OWNER_CONFLICT"));
    }

    #[test]
    fn an_empty_file_or_a_bad_header_refuses_the_file() {
        assert_eq!(read_registry(&b""[..], FileLimits::STANDARD).unwrap_err()[0].code, "HEADER_MISSING");
        let problems = read_registry(&b"obligor,ssn\n"[..], FileLimits::STANDARD).unwrap_err();
        assert!(problems.iter().all(|p| p.line == 1));
        assert!(problems.iter().any(|p| p.code == "HEADER_UNKNOWN_COLUMN"));
    }

    #[test]
    fn an_endless_record_is_cut_off() {
        let file = format!("{HEADER}\n\"{}", "x".repeat(FileLimits::STANDARD.max_record_bytes + 10));
        let problems = read_registry(file.as_bytes(), FileLimits::STANDARD).unwrap_err();
        assert_eq!(problems.last().unwrap().code, "RECORD_TOO_LONG");
    }
}
