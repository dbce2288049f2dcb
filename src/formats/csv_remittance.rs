//! Remittance CSV (`remittance-formats.md`): RFC 4180, UTF-8 (a BOM is allowed), one header
//! row, one payment per row, any column order, names case-insensitive; unknown columns refuse
//! the file. A line is a data row, counted from 1.

use std::io::Read;

use crate::domain::codes::ProblemCode;
use crate::domain::remittance::{DateStyle, RawLine};

use super::bounded::{is_too_long, Budgeted};
use super::{DeclaredTotals, FileError, LineSource, RunningTotals};
use crate::domain::excerpt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    EmployerFein,
    EmployerName,
    CaseNumber,
    EmployeeSsn,
    EmployeeLastName,
    EmployeeFirstName,
    EmployeeId,
    PayDate,
    Amount,
    FipsCode,
    MedicalSupport,
    EmploymentTerminated,
}

/// The columns, their names, and whether a file must have them.
const COLUMNS: [(Column, &str, bool); 12] = [
    (Column::EmployerFein, "employer_fein", true),
    (Column::EmployerName, "employer_name", false),
    (Column::CaseNumber, "case_number", true),
    (Column::EmployeeSsn, "employee_ssn", true),
    (Column::EmployeeLastName, "employee_last_name", true),
    (Column::EmployeeFirstName, "employee_first_name", false),
    (Column::EmployeeId, "employee_id", false),
    (Column::PayDate, "pay_date", true),
    (Column::Amount, "amount", true),
    (Column::FipsCode, "fips_code", false),
    (Column::MedicalSupport, "medical_support", false),
    (Column::EmploymentTerminated, "employment_terminated", false),
];

/// The rows of a remittance CSV, one [`RawLine`] at a time; the control totals are checked
/// after the last row.
pub struct CsvLines<R: Read> {
    reader: csv::Reader<Budgeted<R>>,
    columns: Vec<Column>,
    record: csv::ByteRecord,
    line: u64,
    totals: RunningTotals,
    declared: DeclaredTotals,
    max_record_bytes: usize,
}

impl<R: Read> CsvLines<R> {
    /// Reads the header row; a missing header or an unknown, repeated or missing required
    /// column refuses the file.
    pub fn new(input: R, declared: DeclaredTotals, max_record_bytes: usize) -> Result<CsvLines<R>, FileError> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(Budgeted::new(input, max_record_bytes));
        let mut record = csv::ByteRecord::new();
        let has_header = reader.read_byte_record(&mut record).map_err(|e| not_csv(&e, "the header", max_record_bytes))?;
        reader.get_mut().mark();
        if !has_header {
            return Err(FileError::new(ProblemCode::HeaderMissing, "line 1", "the file is empty: a remittance starts with a header row"));
        }
        if record.as_slice().contains(&0) || std::str::from_utf8(record.as_slice()).is_err() {
            return Err(FileError::new(
                ProblemCode::FileNotUtf8,
                "line 1",
                "the file is not UTF-8 text (it looks like UTF-16 or a binary file): save it as CSV UTF-8",
            ));
        }
        let mut columns = Vec::with_capacity(record.len());
        for (index, raw) in record.iter().enumerate() {
            let name = std::str::from_utf8(raw).unwrap_or("").trim();
            let name = if index == 0 { name.trim_start_matches('\u{feff}') } else { name };
            let Some((column, _, _)) = COLUMNS.iter().find(|(_, known, _)| known.eq_ignore_ascii_case(name)) else {
                let known: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
                return Err(FileError::new(
                    ProblemCode::HeaderUnknownColumn,
                    "line 1",
                    format!("unknown column `{}`; the columns are: {}", excerpt(name), known.join(", ")),
                ));
            };
            if columns.contains(column) {
                return Err(FileError::new(
                    ProblemCode::HeaderDuplicateColumn,
                    "line 1",
                    format!("column `{}` appears twice", excerpt(name)),
                ));
            }
            columns.push(*column);
        }
        if let Some((_, name, _)) = COLUMNS.iter().find(|(column, _, required)| *required && !columns.contains(column)) {
            return Err(FileError::new(ProblemCode::HeaderMissingColumn, "line 1", format!("required column `{name}` is missing")));
        }
        Ok(CsvLines { reader, columns, record, line: 0, totals: RunningTotals::default(), declared, max_record_bytes })
    }

    fn read_line(&mut self) -> Result<Option<RawLine>, FileError> {
        loop {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| not_csv(&e, &format!("data row {}", self.line + 1), self.max_record_bytes))?;
            self.reader.get_mut().mark();
            if !more {
                self.totals.check(self.declared)?;
                return Ok(None);
            }
            // A blank line between rows is not a payment, nor is a row of empty cells as wide
            // as the header (how spreadsheets save trailing empty rows). Any other width is
            // a broken row, refused below.
            let blank = self.record.iter().all(|field| field.iter().all(u8::is_ascii_whitespace));
            if blank && (self.record.len() <= 1 || self.record.len() == self.columns.len()) {
                continue;
            }
            self.line += 1;
            let position = format!("data row {}", self.line);
            if self.record.as_slice().len() > self.max_record_bytes {
                let limit = self.max_record_bytes;
                return Err(FileError::new(ProblemCode::RecordTooLong, position, format!("a row is longer than {limit} bytes")));
            }
            if self.record.len() != self.columns.len() {
                return Err(FileError::new(
                    ProblemCode::RowFieldCount,
                    position,
                    format!("the row has {} fields but the header has {}", self.record.len(), self.columns.len()),
                ));
            }
            let mut line = RawLine { line: self.line, pay_date_style: Some(DateStyle::IsoOrUs), ..RawLine::default() };
            for (column, raw) in self.columns.iter().zip(self.record.iter()) {
                let value = std::str::from_utf8(raw)
                    .map_err(|_| FileError::new(ProblemCode::FileNotUtf8, position.clone(), "the row is not valid UTF-8"))?
                    .to_owned();
                let slot = match column {
                    Column::EmployerFein => &mut line.employer_fein,
                    Column::EmployerName => &mut line.employer_name,
                    Column::CaseNumber => &mut line.case_number,
                    Column::EmployeeSsn => &mut line.employee_ssn,
                    Column::EmployeeLastName => &mut line.last_name,
                    Column::EmployeeFirstName => &mut line.first_name,
                    Column::EmployeeId => &mut line.employee_id,
                    Column::PayDate => &mut line.pay_date,
                    Column::Amount => &mut line.amount,
                    Column::FipsCode => &mut line.fips_code,
                    Column::MedicalSupport => &mut line.medical_support,
                    Column::EmploymentTerminated => &mut line.employment_terminated,
                };
                *slot = Some(value);
            }
            self.totals.observe(&line);
            return Ok(Some(line));
        }
    }
}

/// Describes a CSV error without quoting the data (which may hold an SSN).
fn not_csv(error: &csv::Error, position: &str, max_record_bytes: usize) -> FileError {
    let message = match error.kind() {
        csv::ErrorKind::Io(io) if is_too_long(io) => {
            return FileError::new(
                ProblemCode::RecordTooLong,
                position,
                format!("a row is longer than {max_record_bytes} bytes (an unclosed quote swallows the rest of the file)"),
            )
        }
        csv::ErrorKind::Io(_) => "the upload was interrupted",
        csv::ErrorKind::Utf8 { .. } => "the file is not valid UTF-8",
        _ => "the file cannot be read as CSV",
    };
    FileError::new(ProblemCode::FileNotCsv, position, message)
}

/// Writes lines as a remittance CSV with every column, for tests and tools.
pub fn write_csv(lines: &[RawLine]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS.iter().map(|c| c.1)).expect("writing to memory");
    for line in lines {
        let cell = |value: &Option<String>| value.clone().unwrap_or_default();
        writer
            .write_record([
                cell(&line.employer_fein),
                cell(&line.employer_name),
                cell(&line.case_number),
                cell(&line.employee_ssn),
                cell(&line.last_name),
                cell(&line.first_name),
                cell(&line.employee_id),
                cell(&line.pay_date),
                cell(&line.amount),
                cell(&line.fips_code),
                cell(&line.medical_support),
                cell(&line.employment_terminated),
            ])
            .expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

impl<R: Read> LineSource for CsvLines<R> {
    fn next_line(&mut self) -> Result<Option<RawLine>, FileError> {
        self.read_line()
    }
}
