//! Bytes to records: the file formats the gateway reads, each a streaming parser that says
//! where every problem is.
//!
//! Remittance parsers (`csv_remittance`, `xml_remittance`, `nacha`) turn a file into [`RawLine`]s one at a time,
//! so memory stays bounded whatever the file's size. A [`FileError`] refuses the whole file:
//! it cannot be read as its format, its header is wrong, or its control totals disagree with
//! its lines. Line-level problems are the line rules' business (`domain::remittance`).

pub mod ach_returns;
pub mod csv_remittance;
pub mod nacha;
pub mod registry;
pub mod xml_remittance;

use std::io::Read;

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
    /// A stable code such as `HEADER_UNKNOWN_COLUMN` or `NACHA_ENTRY_HASH`.
    pub code: &'static str,
    /// Where: "line 3", "record 12", "byte 4096", or "end of file".
    pub position: String,
    pub message: String,
}

impl FileError {
    pub fn new(code: &'static str, position: impl Into<String>, message: impl Into<String>) -> FileError {
        FileError { code, position: position.into(), message: message.into() }
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
/// Amounts that do not parse are not added: such a line is rejected by the line rules, and
/// a total that then disagrees refuses the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunningTotals {
    pub line_count: u64,
    pub total: Money,
}

impl RunningTotals {
    pub fn observe(&mut self, line: &RawLine) {
        self.line_count += 1;
        if let Some(amount) = line.amount.as_deref().and_then(|a| Money::parse(a.trim()).ok()) {
            if let Some(total) = self.total.checked_add(amount) {
                self.total = total;
            }
        }
    }

    /// Compares with declared totals, at the end of the file.
    pub fn check(&self, declared: DeclaredTotals) -> Result<(), FileError> {
        if let Some(count) = declared.line_count.filter(|&c| c != self.line_count) {
            return Err(FileError::new(
                "CONTROL_TOTAL_MISMATCH",
                "end of file",
                format!("the file declares {count} lines but has {}", self.line_count),
            ));
        }
        if let Some(total) = declared.total.filter(|&t| t != self.total) {
            return Err(FileError::new(
                "CONTROL_TOTAL_MISMATCH",
                "end of file",
                format!("the file declares a total of {total} but its lines add up to {}", self.total),
            ));
        }
        Ok(())
    }
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
        RemittanceFormat::Xml => Box::new(LineIter::new(xml_remittance::XmlLines::new(input, batch_id, declared)?)),
        RemittanceFormat::Nacha => Box::new(LineIter::new(nacha::NachaLines::new(input, declared))),
    };
    Ok(Box::new(AtMost { lines, read: 0, max: limits.max_lines }))
}

/// Refuses a file past `max` lines, whatever its format.
struct AtMost {
    lines: Lines,
    read: u64,
    max: u64,
}

impl Iterator for AtMost {
    type Item = Result<RawLine, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.lines.next()?;
        if next.is_ok() {
            self.read += 1;
            if self.read > self.max {
                self.read = self.max; // Stays refused: the caller stops at the first error.
                return Some(Err(FileError::new(
                    "TOO_MANY_LINES",
                    format!("line {}", self.max + 1),
                    format!("the file has more than {} lines, the gateway's limit per file", self.max),
                )));
            }
        }
        Some(next)
    }
}
