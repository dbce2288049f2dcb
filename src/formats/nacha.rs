//! NACHA CCD+ and CTX files with the child support DED addenda (`remittance-formats.md`,
//! NACHA's Child Support Application Banking Convention): our own fixed-width reader.
//!
//! Records are 94 characters, one per line (CRLF, LF, or no line breaks at all); the file is
//! padded with all-9 records to a multiple of 10. Every count, hash and total in the batch
//! and file control records is checked; any mismatch refuses the file. A line is one DED
//! segment: one per CCD+ entry, one or more per CTX entry (whose addenda are joined in
//! sequence order before the segments are read). An entry without a readable DED is one line
//! with a `DED_MALFORMED` problem.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

use crate::domain::remittance::{DateStyle, FormatProblem, ProblemCode, RawLine};
use crate::domain::Money;

use super::{DeclaredTotals, FileError, LineSource, RunningTotals};

pub const RECORD_LENGTH: usize = 94;
pub const BLOCKING_FACTOR: u64 = 10;
/// NACHA allows at most 9,999 addenda to a CTX entry.
const MAX_ADDENDA: usize = 9_999;

/// Reads 94-character records whatever the line breaks.
pub(super) struct Records<R: Read> {
    input: BufReader<R>,
    /// The number of the record last read, from 1.
    pub(super) number: u64,
}

impl<R: Read> Records<R> {
    pub(super) fn new(input: R) -> Records<R> {
        Records { input: BufReader::new(input), number: 0 }
    }

    /// The next record, or `None` at the end of the file.
    pub(super) fn next(&mut self) -> Result<Option<[u8; RECORD_LENGTH]>, FileError> {
        let mut record = [0u8; RECORD_LENGTH];
        let mut filled = 0;
        while filled < RECORD_LENGTH {
            let read = self
                .input
                .read(&mut record[filled..])
                .map_err(|_| FileError::new(ProblemCode::NachaRead, "upload", "the upload was interrupted"))?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Ok(None);
        }
        self.number += 1;
        let short = filled < RECORD_LENGTH || record.iter().any(|&b| b == b'\n' || b == b'\r');
        if short && record[..filled].iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(None); // Trailing line breaks or spaces at the very end.
        }
        if short {
            return Err(FileError::new(
                ProblemCode::NachaRecordLength,
                self.position(),
                format!("every record is {RECORD_LENGTH} characters"),
            ));
        }
        if let Some(index) = record.iter().position(|b| !b.is_ascii() || (b.is_ascii_control())) {
            return Err(FileError::new(
                ProblemCode::NachaRecordCharacter,
                self.position(),
                format!("byte {} of record {} is 0x{:02X}: a NACHA record holds printable ASCII only", index + 1, self.number, record[index]),
            ));
        }
        // Consume the line break after the record, if any.
        let buffered = self.input.fill_buf().map_err(|_| FileError::new(ProblemCode::NachaRead, "upload", "the upload was interrupted"))?;
        match buffered {
            [b'\r', b'\n', ..] => self.input.consume(2),
            [b'\n', ..] | [b'\r'] => self.input.consume(1),
            _ => {}
        }
        Ok(Some(record))
    }

    pub(super) fn position(&self) -> String {
        format!("record {}", self.number)
    }
}

/// A field at 1-based positions `from..=to`, as text (records are ASCII; anything else is
/// replaced so it still reports as invalid).
pub(super) fn field(record: &[u8; RECORD_LENGTH], from: usize, to: usize) -> String {
    String::from_utf8_lossy(&record[from - 1..to]).into_owned()
}

pub(super) fn number(record: &[u8; RECORD_LENGTH], from: usize, to: usize) -> Option<u64> {
    let text = &record[from - 1..to];
    text.iter().all(u8::is_ascii_digit).then(|| text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sec {
    Ccd,
    Ctx,
}

/// The batch being read and its running control values.
#[derive(Debug)]
struct Batch {
    sec: Sec,
    company_name: String,
    company_id: String,
    entry_addenda_count: u64,
    entry_hash: u64,
    total_credit: u64,
}

/// An entry detail waiting for its addenda.
#[derive(Debug)]
struct Entry {
    record: u64,
    amount_cents: u64,
    prenote: bool,
    addenda_expected: bool,
    addenda: Vec<String>,
}

/// The file's running control values.
#[derive(Debug, Default)]
struct FileTotals {
    batches: u64,
    entry_addenda_count: u64,
    entry_hash: u64,
    total_credit: u64,
}

/// The DED lines of a NACHA file, one [`RawLine`] at a time.
pub struct NachaLines<R: Read> {
    records: Records<R>,
    declared: DeclaredTotals,
    seen_header: bool,
    seen_control: bool,
    batch: Option<Batch>,
    entry: Option<Entry>,
    file: FileTotals,
    ready: VecDeque<RawLine>,
    totals: RunningTotals,
    /// The block count the file control declares, checked once the padding is read.
    file_control_blocks: Option<u64>,
}

impl<R: Read> NachaLines<R> {
    pub fn new(input: R, declared: DeclaredTotals) -> NachaLines<R> {
        NachaLines {
            records: Records::new(input),
            declared,
            seen_header: false,
            seen_control: false,
            batch: None,
            entry: None,
            file: FileTotals::default(),
            ready: VecDeque::new(),
            totals: RunningTotals::default(),
            file_control_blocks: None,
        }
    }

    fn error(&self, code: ProblemCode, message: impl Into<String>) -> FileError {
        FileError::new(code, self.records.position(), message)
    }

    fn read_line(&mut self) -> Result<Option<RawLine>, FileError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            let Some(record) = self.records.next()? else {
                self.finish()?;
                return Ok(None);
            };
            if self.seen_control {
                if record.iter().all(|&b| b == b'9') {
                    continue; // Block padding.
                }
                return Err(self.error(ProblemCode::NachaRecordType, "only padding records of all 9s may follow the file control record"));
            }
            match record[0] {
                b'1' => self.file_header(&record)?,
                b'5' => self.batch_header(&record)?,
                b'6' => self.entry_detail(&record)?,
                b'7' => self.addenda(&record)?,
                b'8' => self.batch_control(&record)?,
                b'9' => self.file_control(&record)?,
                _ => return Err(self.error(ProblemCode::NachaRecordType, "a record's type code is 1, 5, 6, 7, 8 or 9")),
            }
        }
    }

    fn file_header(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        if self.seen_header || self.records.number != 1 {
            return Err(self.error(ProblemCode::NachaRecordType, "the file header must be the first record, once"));
        }
        let checks = [
            (field(record, 2, 3) == "01", "priority code 01"),
            (field(record, 35, 37) == "094", "record size 094"),
            (field(record, 38, 39) == "10", "blocking factor 10"),
            (field(record, 40, 40) == "1", "format code 1"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(self.error(ProblemCode::NachaFileHeader, format!("the file header must carry {what}")));
        }
        self.seen_header = true;
        Ok(())
    }

    fn batch_header(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        if !self.seen_header || self.batch.is_some() {
            return Err(self.error(ProblemCode::NachaRecordType, "a batch header comes after the file header or a batch control"));
        }
        if !matches!(field(record, 2, 4).as_str(), "200" | "220") {
            return Err(self.error(ProblemCode::NachaBatchHeader, "the service class code is 200 or 220 (credits)"));
        }
        let sec = match field(record, 51, 53).as_str() {
            "CCD" => Sec::Ccd,
            "CTX" => Sec::Ctx,
            other => return Err(self.error(ProblemCode::NachaBatchHeader, format!("the SEC code is CCD or CTX, not {other}"))),
        };
        self.batch = Some(Batch {
            sec,
            company_name: field(record, 5, 20).trim().to_owned(),
            company_id: field(record, 41, 50),
            entry_addenda_count: 0,
            entry_hash: 0,
            total_credit: 0,
        });
        Ok(())
    }

    fn entry_detail(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        self.close_entry();
        let entry_record = self.records.number;
        let Some(batch) = self.batch.as_mut() else {
            return Err(self.error(ProblemCode::NachaRecordType, "an entry detail must be inside a batch"));
        };
        let prenote = match field(record, 2, 3).as_str() {
            "22" | "32" => false,
            "23" | "33" => true,
            other => {
                return Err(FileError::new(
                    ProblemCode::NachaTransactionCode,
                    format!("record {entry_record}"),
                    format!("transaction code {other}: a remittance is a credit (22, 32) or a prenote (23, 33)"),
                ))
            }
        };
        let (Some(routing), Some(amount_cents)) = (number(record, 4, 11), number(record, 30, 39)) else {
            return Err(FileError::new(
                ProblemCode::NachaEntryDetail,
                format!("record {entry_record}"),
                "the receiving DFI id and the amount are digits",
            ));
        };
        batch.entry_addenda_count += 1;
        batch.entry_hash += routing;
        batch.total_credit += amount_cents;
        self.entry = Some(Entry { record: entry_record, amount_cents, prenote, addenda_expected: record[78] == b'1', addenda: Vec::new() });
        Ok(())
    }

    fn addenda(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        let position = self.records.position();
        let (Some(batch), Some(entry)) = (self.batch.as_mut(), self.entry.as_mut()) else {
            return Err(FileError::new(ProblemCode::NachaRecordType, position, "an addenda record must follow an entry detail"));
        };
        if field(record, 2, 3) != "05" {
            return Err(FileError::new(ProblemCode::NachaAddenda, position, "the addenda type code is 05"));
        }
        if !entry.addenda_expected {
            return Err(FileError::new(ProblemCode::NachaAddenda, position, "the entry's addenda indicator is 0 but an addenda follows"));
        }
        let sequence = number(record, 84, 87);
        if sequence != Some(entry.addenda.len() as u64 + 1) {
            return Err(FileError::new(ProblemCode::NachaAddenda, position, "addenda sequence numbers run 0001, 0002, … within an entry"));
        }
        let limit = if batch.sec == Sec::Ccd { 1 } else { MAX_ADDENDA };
        if entry.addenda.len() >= limit {
            return Err(FileError::new(ProblemCode::NachaAddenda, position, "a CCD entry has one addenda record"));
        }
        batch.entry_addenda_count += 1;
        entry.addenda.push(field(record, 4, 83));
        Ok(())
    }

    fn batch_control(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        self.close_entry();
        let Some(batch) = self.batch.take() else {
            return Err(self.error(ProblemCode::NachaRecordType, "a batch control must close a batch"));
        };
        let count = number(record, 5, 10);
        let hash = number(record, 11, 20);
        let debit = number(record, 21, 32);
        let credit = number(record, 33, 44);
        if count != Some(batch.entry_addenda_count) {
            return Err(self.error(
                ProblemCode::NachaControlTotals,
                format!("the batch control counts {} entries and addenda; the batch has {}", shown(count), batch.entry_addenda_count),
            ));
        }
        if hash != Some(batch.entry_hash % 10_000_000_000) {
            return Err(self.error(ProblemCode::NachaEntryHash, "the batch control's entry hash does not match the batch's entries"));
        }
        if debit != Some(0) || credit != Some(batch.total_credit) {
            return Err(self.error(
                ProblemCode::NachaControlTotals,
                format!("the batch control's totals do not match: credits {} in the entries", Money::from_cents(batch.total_credit as i64)),
            ));
        }
        self.file.batches += 1;
        self.file.entry_addenda_count += batch.entry_addenda_count;
        self.file.entry_hash += batch.entry_hash;
        self.file.total_credit += batch.total_credit;
        Ok(())
    }

    fn file_control(&mut self, record: &[u8; RECORD_LENGTH]) -> Result<(), FileError> {
        if self.batch.is_some() || !self.seen_header {
            return Err(self.error(ProblemCode::NachaRecordType, "the file control comes after the last batch control"));
        }
        let checks = [
            (number(record, 2, 7) == Some(self.file.batches), "batch count"),
            (number(record, 14, 21) == Some(self.file.entry_addenda_count), "entry and addenda count"),
            (number(record, 32, 43) == Some(0) && number(record, 44, 55) == Some(self.file.total_credit), "total amounts"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(self.error(ProblemCode::NachaControlTotals, format!("the file control's {what} does not match the file")));
        }
        if number(record, 22, 31) != Some(self.file.entry_hash % 10_000_000_000) {
            return Err(self.error(ProblemCode::NachaEntryHash, "the file control's entry hash does not match the file's entries"));
        }
        self.seen_control = true;
        self.file_control_blocks = number(record, 8, 13);
        Ok(())
    }

    /// At the end of the file: the file control was read and the blocks add up.
    fn finish(&mut self) -> Result<(), FileError> {
        if !self.seen_control {
            return Err(FileError::new(ProblemCode::NachaRecordType, "end of file", "the file ends without a file control record"));
        }
        let records = self.records.number;
        if records % BLOCKING_FACTOR != 0 {
            return Err(FileError::new(
                ProblemCode::NachaBlocking,
                "end of file",
                format!("{records} records: a file is padded with 9s to a multiple of 10"),
            ));
        }
        if self.file_control_blocks != Some(records / BLOCKING_FACTOR) {
            return Err(FileError::new(
                ProblemCode::NachaControlTotals,
                "end of file",
                "the file control's block count does not match the file",
            ));
        }
        self.totals.check(self.declared)
    }

    /// Turns the finished entry into its lines.
    fn close_entry(&mut self) {
        let (Some(entry), Some(batch)) = (self.entry.take(), self.batch.as_ref()) else { return };
        let template = RawLine {
            record: Some(entry.record),
            employer_fein: Some(fein_of(&batch.company_id)),
            employer_name: Some(batch.company_name.clone()).filter(|n| !n.is_empty()),
            pay_date_style: Some(if batch.sec == Sec::Ccd { DateStyle::Yymmdd } else { DateStyle::Ccyymmdd }),
            prenote: entry.prenote,
            ..RawLine::default()
        };
        let text = entry.addenda.concat();
        let segments: Vec<&str> = segments(&text).filter(|s| s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("DED"))).collect();
        let mut lines: Vec<RawLine> = if segments.is_empty() {
            let mut line = template.clone();
            line.format_problems.push(FormatProblem {
                field: "amount",
                code: ProblemCode::DedMalformed,
                message: format!("the entry at record {} has no DED segment", entry.record),
            });
            vec![line]
        } else {
            segments.iter().map(|segment| ded_line(segment, &template, entry.record)).collect()
        };
        if batch.sec == Sec::Ccd && lines.len() > 1 {
            for line in &mut lines {
                line.format_problems.push(FormatProblem {
                    field: "amount",
                    code: ProblemCode::DedMalformed,
                    message: "a CCD+ entry carries one DED segment".into(),
                });
            }
        }
        // The entry's amount must equal its DED amount(s); a prenote's is zero.
        let ded_cents: Option<u64> =
            lines.iter().map(|l| l.amount.as_deref().and_then(|a| Money::parse(a).ok()).map(|m| m.cents() as u64)).sum();
        if !entry.prenote && ded_cents.is_some_and(|c| c != entry.amount_cents) {
            for line in &mut lines {
                line.format_problems.push(FormatProblem {
                    field: "amount",
                    code: ProblemCode::AmountMismatch,
                    message: format!(
                        "the entry at record {} is for {} but its DED amounts add up to {}",
                        entry.record,
                        Money::from_cents(entry.amount_cents as i64),
                        Money::from_cents(ded_cents.unwrap_or(0) as i64)
                    ),
                });
            }
        }
        for mut line in lines {
            line.line = self.totals.line_count + 1;
            self.totals.observe(&line);
            self.ready.push_back(line);
        }
    }
}

/// The batch's company identification as a FEIN: often `1` + 9 digits (the IRS designator).
fn fein_of(company_id: &str) -> String {
    let id = company_id.trim();
    match id.get(1..) {
        Some(digits) if id.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) => digits.to_owned(),
        _ => id.to_owned(),
    }
}

/// The segments of joined payment-related information: split on `\`, trailing spaces and
/// empty pieces dropped (generators pad with spaces and may omit the final `\`).
fn segments(text: &str) -> impl Iterator<Item = &str> {
    text.split('\\').map(str::trim).filter(|s| !s.is_empty())
}

/// Reads one DED segment: `DED*CS*case*date*amount*ssn*medical*name*fips*terminated`.
fn ded_line(segment: &str, template: &RawLine, record: u64) -> RawLine {
    let mut line = template.clone();
    let elements: Vec<&str> = segment.split('*').map(str::trim).collect();
    let element = |index: usize| elements.get(index).copied().filter(|e| !e.is_empty()).map(str::to_owned);
    if !elements[0].eq_ignore_ascii_case("DED") || !element(1).is_some_and(|a| a.eq_ignore_ascii_case("CS")) || elements.len() < 6 {
        line.format_problems.push(FormatProblem {
            field: "amount",
            code: ProblemCode::DedMalformed,
            message: format!("the DED segment of the entry at record {record} is not DED*CS*case*date*amount*SSN…"),
        });
    }
    line.case_number = element(2);
    line.pay_date = element(3);
    line.amount = match element(4) {
        Some(digits) if (1..=10).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let cents: i64 = digits.parse().expect("at most 10 digits");
            Some(Money::from_cents(cents).to_string())
        }
        // The convention writes the amount in cents, digits only ("18462" is 184.62): "184.62"
        // or "10.00" here is a sender's mistake that would be read as a hundred times less.
        // Kept as written, so it still counts against a declared control total.
        Some(other) => {
            line.format_problems.push(FormatProblem {
                field: "amount",
                code: ProblemCode::DedMalformed,
                message: format!(
                    "the DED amount of the entry at record {record} is `{}`: it is written in cents, 1 to 10 digits only (18462 is 184.62)",
                    crate::domain::excerpt(&other)
                ),
            });
            Some(other)
        }
        None => None,
    };
    line.employee_ssn = element(5);
    line.medical_support = element(6);
    line.last_name = None; // DED07 is optional and abbreviated; it is not checked.
    line.fips_code = element(8);
    line.employment_terminated = element(9);
    line
}

fn shown(value: Option<u64>) -> String {
    value.map_or_else(|| "a non-number".to_owned(), |v| v.to_string())
}

/// Builds NACHA files, for tests and tools.
pub mod writer {
    use super::*;

    /// One entry of a file to write: its DED segments (several make a CTX entry).
    #[derive(Clone, Debug)]
    pub struct EntryToWrite {
        pub routing: u64,
        pub amount_cents: u64,
        pub prenote: bool,
        pub segments: Vec<String>,
    }

    /// A DED segment from a line's fields, CCD+ (YYMMDD) or CTX (CCYYMMDD) dates.
    pub fn ded_segment(line: &RawLine) -> String {
        let amount = line.amount.as_deref().and_then(|a| Money::parse(a).ok()).map_or(0, |m| m.cents());
        let parts = [
            "DED".to_owned(),
            "CS".to_owned(),
            line.case_number.clone().unwrap_or_default(),
            line.pay_date.clone().unwrap_or_default(),
            amount.to_string(),
            line.employee_ssn.clone().unwrap_or_default(),
            line.medical_support.clone().unwrap_or_else(|| "N".to_owned()),
            String::new(),
            line.fips_code.clone().unwrap_or_default(),
            line.employment_terminated.clone().unwrap_or_default(),
        ];
        format!("{}\\", parts.join("*").trim_end_matches('*'))
    }

    /// A CCD+ file with one entry per line, each of the line's amount with the line's DED
    /// segment: the NACHA twin of `write_csv` and `write_xml`, for tests and tools.
    pub fn write_lines(company_name: &str, fein: &str, lines: &[RawLine]) -> Vec<u8> {
        let entries: Vec<EntryToWrite> = lines
            .iter()
            .map(|line| EntryToWrite {
                routing: 91_000_019,
                amount_cents: line.amount.as_deref().and_then(|a| Money::parse(a).ok()).map_or(0, |m| m.cents().max(0) as u64),
                prenote: false,
                segments: vec![ded_segment(line)],
            })
            .collect();
        write_file("CCD", company_name, fein, &entries)
    }

    fn pad(text: &str, width: usize) -> String {
        format!("{text:<width$}").chars().take(width).collect()
    }

    /// Entries per batch the writer puts in one batch: a batch control counts entries and
    /// addenda in 6 digits, so a large file is written as several batches.
    const ENTRIES_PER_BATCH: usize = 100_000;

    /// A complete file: header, batches of at most [`ENTRIES_PER_BATCH`] entries with their
    /// addenda, controls, padding.
    pub fn write_file(sec: &str, company_name: &str, fein: &str, entries: &[EntryToWrite]) -> Vec<u8> {
        let mut records = vec![format!(
            "101 091000019 {}2611221200A094101{}{}{}",
            pad(&format!("1{fein}"), 9).chars().take(9).collect::<String>(),
            pad("FSPC", 23),
            pad(company_name, 23),
            pad("", 8)
        )];
        let (mut file_count, mut file_hash, mut file_credit, mut batches) = (0u64, 0u64, 0u64, 0u64);
        // An empty file still has its one (empty) batch.
        let batch_entries: Vec<&[EntryToWrite]> =
            if entries.is_empty() { vec![entries] } else { entries.chunks(ENTRIES_PER_BATCH).collect() };
        for (batch_index, batch) in batch_entries.into_iter().enumerate() {
            batches += 1;
            let batch_number = batch_index + 1;
            records.push(format!(
                "5220{}{}{}{}{}{}{}109100001{batch_number:07}",
                pad(company_name, 16),
                pad("", 20),
                pad(&format!("1{fein}"), 10),
                pad(sec, 3),
                pad("CHILD SUP", 10),
                pad("", 6),
                "261122   "
            ));
            let (mut count, mut hash, mut credit) = (0u64, 0u64, 0u64);
            for (offset, entry) in batch.iter().enumerate() {
                let index = batch_index * ENTRIES_PER_BATCH + offset;
                let code = if entry.prenote { "23" } else { "22" };
                let addenda: Vec<String> = if sec == "CTX" {
                    let joined = entry.segments.concat();
                    joined.as_bytes().chunks(80).map(|c| String::from_utf8_lossy(c).into_owned()).collect()
                } else {
                    entry.segments.clone()
                };
                let trace = format!("09100001{:07}", index + 1);
                records.push(format!(
                    "6{code}{:08}1{}{:010}{}{}{}{}",
                    entry.routing,
                    pad("123456789", 17),
                    entry.amount_cents,
                    pad("", 15),
                    pad(&format!("{:04}", addenda.len()), 4),
                    pad("SDU", 18),
                    format!("  {}{trace}", if addenda.is_empty() { 0 } else { 1 })
                ));
                count += 1 + addenda.len() as u64;
                hash += entry.routing;
                credit += entry.amount_cents;
                for (sequence, text) in addenda.iter().enumerate() {
                    records.push(format!("705{}{:04}{}", pad(text, 80), sequence + 1, &trace[8..]));
                }
            }
            records.push(format!(
                "8220{count:06}{:010}{:012}{credit:012}{}{}{}09100001{batch_number:07}",
                hash % 10_000_000_000,
                0,
                pad(&format!("1{fein}"), 10),
                pad("", 19),
                pad("", 6)
            ));
            file_count += count;
            file_hash += hash;
            file_credit += credit;
        }
        let (count, hash, credit) = (file_count, file_hash % 10_000_000_000, file_credit);
        let blocks = (records.len() as u64 + 1).div_ceil(BLOCKING_FACTOR);
        records.push(format!("9{batches:06}{blocks:06}{count:08}{hash:010}{:012}{credit:012}{}", 0, pad("", 39)));
        while records.len() as u64 % BLOCKING_FACTOR != 0 {
            records.push("9".repeat(RECORD_LENGTH));
        }
        for record in &records {
            assert_eq!(record.len(), RECORD_LENGTH, "record `{record}`");
        }
        (records.join("\n") + "\n").into_bytes()
    }
}

impl<R: Read> LineSource for NachaLines<R> {
    fn next_line(&mut self) -> Result<Option<RawLine>, FileError> {
        self.read_line()
    }
}
