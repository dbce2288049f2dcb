//! Bytes to records: the file formats the gateway reads, each a streaming parser that says
//! where every problem is.
//!
//! Remittance parsers (`csv_remittance`, `xml_remittance`, `nacha`) turn a file into [`RawLine`]s one at a time,
//! so memory stays bounded whatever the file's size. A [`FileError`] refuses the whole file:
//! it cannot be read as its format, its header is wrong, or its control totals disagree with
//! its lines. Line-level problems are the line rules' business (`domain::remittance`).

pub mod ach_returns;
pub mod bounded;
pub mod csv_remittance;
pub mod fuzz;
pub mod nacha;
pub mod registry;
pub mod xml_remittance;

use std::io::Read;

use crate::domain::codes::{CodeKind, ProblemCode};
use crate::domain::remittance::RawLine;
use crate::domain::Money;

/// The formats a remittance file may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemittanceFormat {
    Csv,
    Xml,
    Nacha,
}

impl RemittanceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RemittanceFormat::Csv => "CSV",
            RemittanceFormat::Xml => "XML",
            RemittanceFormat::Nacha => "NACHA",
        }
    }
}

/// Why a whole file is refused. Never quotes personal data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {position}: {message}")]
pub struct FileError {
    /// The string of a file-refusal [`ProblemCode`] (`HEADER_UNKNOWN_COLUMN`,
    /// `NACHA_ENTRY_HASH`, …), as clients receive it; set only by [`FileError::new`].
    pub code: &'static str,
    /// Where: "line 3", "record 12", "byte 4096", or "end of file".
    pub position: String,
    pub message: String,
}

impl FileError {
    pub fn new(code: ProblemCode, position: impl Into<String>, message: impl Into<String>) -> FileError {
        debug_assert!(code.is(CodeKind::FileRefusal), "{code} is not a file refusal");
        FileError { code: code.as_str(), position: position.into(), message: message.into() }
    }
}

/// Hard limits on one file, whatever its format: past them it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    /// Lines (payments, registry rows) in one file.
    pub max_lines: u64,
    /// Bytes in one CSV record: a real row is a few hundred, so anything longer is a broken
    /// file (an unclosed quote swallowing the rest) or an attack.
    pub max_record_bytes: usize,
}

impl FileLimits {
    /// 5,000,000 lines: five times the largest payroll vendor's file; 64 KiB a record.
    pub const STANDARD: FileLimits = FileLimits { max_lines: 5_000_000, max_record_bytes: 64 * 1024 };
}

/// Control totals the sender declared with a CSV upload (CSV has no trailer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeclaredTotals {
    pub line_count: Option<u64>,
    pub total: Option<Money>,
}

/// The line count and total of the lines read so far, to compare with control totals.
///
/// Every amount counts: the sum is kept in `i128` cents and amounts are read without
/// [`Money`]'s range, so an absurd amount cannot overflow the sum or drop out of it and let a
/// file whose other lines match its declared total through. An amount that cannot be read at
/// all makes a declared total uncheckable, which refuses the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunningTotals {
    pub line_count: u64,
    control_cents: i128,
    /// The first line whose amount is there but is not a number (or whose sum overflowed).
    unreadable: Option<u64>,
}

impl RunningTotals {
    pub fn observe(&mut self, line: &RawLine) {
        self.line_count += 1;
        let Some(amount) = line.amount.as_deref().map(str::trim).filter(|a| !a.is_empty()) else { return };
        match crate::domain::money::parse_wide_cents(amount).ok().and_then(|cents| self.control_cents.checked_add(cents)) {
            Some(sum) => self.control_cents = sum,
            None => {
                self.unreadable.get_or_insert(line.line);
            }
        }
    }

    /// Compares with declared totals, at the end of the file.
    pub fn check(&self, declared: DeclaredTotals) -> Result<(), FileError> {
        if let Some(count) = declared.line_count.filter(|&c| c != self.line_count) {
            return Err(FileError::new(
                ProblemCode::ControlTotalMismatch,
                "end of file",
                format!("the file declares {count} lines but has {}", self.line_count),
            ));
        }
        let Some(total) = declared.total else { return Ok(()) };
        if let Some(line) = self.unreadable {
            return Err(FileError::new(
                ProblemCode::ControlTotalMismatch,
                "end of file",
                format!("line {line}'s amount cannot be read, so the declared total of {total} cannot be checked"),
            ));
        }
        if self.control_cents != i128::from(total.cents()) {
            return Err(FileError::new(
                ProblemCode::ControlTotalMismatch,
                "end of file",
                format!("the file declares a total of {total} but its lines add up to {}", wide_amount(self.control_cents)),
            ));
        }
        Ok(())
    }
}

/// Cents of any size as a decimal amount (`12345.67`).
fn wide_amount(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// The lines of a remittance file, one at a time.
pub type Lines = Box<dyn Iterator<Item = Result<RawLine, FileError>> + Send>;

/// A parser that yields a file's lines: `Ok(None)` at the end (after the control totals were
/// checked), `Err` when the file is refused.
pub trait LineSource {
    fn next_line(&mut self) -> Result<Option<RawLine>, FileError>;
}

/// A [`LineSource`] as an iterator that stops for good after the end or a refusal.
pub struct LineIter<P> {
    source: P,
    finished: bool,
}

impl<P: LineSource> LineIter<P> {
    pub fn new(source: P) -> LineIter<P> {
        LineIter { source, finished: false }
    }
}

impl<P: LineSource> Iterator for LineIter<P> {
    type Item = Result<RawLine, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let next = self.source.next_line().transpose();
        self.finished = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Opens a remittance file of `format`. `batch_id` is the submitted one (an XML header's
/// BatchId must equal it).
pub fn remittance_lines(
    format: RemittanceFormat,
    input: impl Read + Send + 'static,
    declared: DeclaredTotals,
    batch_id: &str,
    limits: FileLimits,
) -> Result<Lines, FileError> {
    let lines: Lines = match format {
        RemittanceFormat::Csv => Box::new(LineIter::new(csv_remittance::CsvLines::new(input, declared, limits.max_record_bytes)?)),
        RemittanceFormat::Xml => {
            Box::new(LineIter::new(xml_remittance::XmlLines::new(input, batch_id, declared, limits.max_record_bytes)?))
        }
        RemittanceFormat::Nacha => Box::new(LineIter::new(nacha::NachaLines::new(input, declared))),
    };
    Ok(Box::new(AtMost { lines, read: 0, max: limits.max_lines, empty_reported: false }))
}

/// Refuses a file past `max` lines, or with none, whatever its format.
struct AtMost {
    lines: Lines,
    read: u64,
    max: u64,
    empty_reported: bool,
}

impl Iterator for AtMost {
    type Item = Result<RawLine, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(next) = self.lines.next() else {
            // A file with no line is not a remittance: refused, so it does not use up its
            // batch id (a header-only CSV is a payroll export gone wrong, not "nothing due").
            if self.read == 0 && !self.empty_reported {
                self.empty_reported = true;
                return Some(Err(FileError::new(
                    ProblemCode::NoLines,
                    "end of file",
                    "the file has no payment lines: nothing was recorded",
                )));
            }
            return None;
        };
        if next.is_ok() {
            self.read += 1;
            if self.read > self.max {
                self.read = self.max; // Stays refused: the caller stops at the first error.
                return Some(Err(FileError::new(
                    ProblemCode::TooManyLines,
                    format!("line {}", self.max + 1),
                    format!("the file has more than {} lines, the gateway's limit per file", self.max),
                )));
            }
        }
        Some(next)
    }
}
