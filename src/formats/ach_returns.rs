//! ACH return files: the bank sends back debits it could not take, each an entry detail with
//! a type-99 addenda carrying the return reason code and the original entry's trace number
//! (NACHA Operating Rules, Appendix Four). Record structure, counts and entry hashes are
//! checked as in remittance files; a file that fails them is refused whole.

use std::io::Read;

use super::nacha::{field, number, Records, BLOCKING_FACTOR};
use super::FileError;
use crate::domain::codes::ProblemCode;

/// One returned entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnedEntry {
    /// The physical record number of the return entry, for messages.
    pub record: u64,
    /// The reason code as written (`R01` …); the application checks it.
    pub code: String,
    /// The trace number of the original debit, which names the payment.
    pub original_trace: String,
    pub amount_cents: u64,
}

/// Reads a whole return file (return files are small: one entry per returned debit), of at
/// most `max_entries` returns.
pub fn read_returns(input: impl Read, max_entries: u64) -> Result<Vec<ReturnedEntry>, FileError> {
    let mut records = Records::new(input);
    let mut entries: Vec<ReturnedEntry> = Vec::new();
    let mut pending_entry: Option<(u64, u64)> = None; // (record, amount) awaiting its addenda
    let (mut in_batch, mut seen_header, mut seen_control) = (false, false, false);
    let (mut batch_count, mut batch_hash, mut file_count, mut file_hash, mut batches) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut blocks = None;
    while let Some(record) = records.next()? {
        let error = |code: ProblemCode, message: &str| FileError::new(code, records.position(), message);
        if seen_control {
            if record.iter().all(|&b| b == b'9') {
                continue;
            }
            return Err(error(ProblemCode::NachaRecordType, "only padding records of all 9s may follow the file control record"));
        }
        match record[0] {
            b'1' if !seen_header && records.number == 1 => seen_header = true,
            b'5' if seen_header && !in_batch => {
                in_batch = true;
                (batch_count, batch_hash) = (0, 0);
            }
            b'6' if in_batch => {
                if let Some((entry_record, _)) = pending_entry.take() {
                    return Err(FileError::new(
                        ProblemCode::AchReturnAddenda,
                        format!("record {entry_record}"),
                        "a return entry carries a type-99 addenda",
                    ));
                }
                let (Some(routing), Some(amount)) = (number(&record, 4, 11), number(&record, 30, 39)) else {
                    return Err(error(ProblemCode::NachaEntryDetail, "the receiving DFI id and the amount are digits"));
                };
                batch_count += 1;
                batch_hash += routing;
                pending_entry = Some((records.number, amount));
            }
            b'7' if in_batch => {
                let Some((entry_record, amount_cents)) = pending_entry.take() else {
                    return Err(error(ProblemCode::NachaRecordType, "an addenda record must follow an entry detail"));
                };
                if field(&record, 2, 3) != "99" {
                    return Err(error(ProblemCode::AchReturnAddenda, "a return's addenda type code is 99"));
                }
                batch_count += 1;
                if entries.len() as u64 >= max_entries {
                    return Err(error(
                        ProblemCode::TooManyLines,
                        &format!("the file has more than {max_entries} returns, the gateway's limit per file"),
                    ));
                }
                entries.push(ReturnedEntry {
                    record: entry_record,
                    code: field(&record, 4, 6).trim().to_owned(),
                    original_trace: field(&record, 7, 21).trim().to_owned(),
                    amount_cents,
                });
            }
            b'8' if in_batch => {
                if let Some((entry_record, _)) = pending_entry.take() {
                    return Err(FileError::new(
                        ProblemCode::AchReturnAddenda,
                        format!("record {entry_record}"),
                        "a return entry carries a type-99 addenda",
                    ));
                }
                if number(&record, 5, 10) != Some(batch_count) {
                    return Err(error(
                        ProblemCode::NachaControlTotals,
                        "the batch control's entry and addenda count does not match the batch",
                    ));
                }
                if number(&record, 11, 20) != Some(batch_hash % 10_000_000_000) {
                    return Err(error(ProblemCode::NachaEntryHash, "the batch control's entry hash does not match the batch's entries"));
                }
                in_batch = false;
                batches += 1;
                file_count += batch_count;
                file_hash += batch_hash;
            }
            b'9' if seen_header && !in_batch => {
                if number(&record, 2, 7) != Some(batches) || number(&record, 14, 21) != Some(file_count) {
                    return Err(error(ProblemCode::NachaControlTotals, "the file control's counts do not match the file"));
                }
                if number(&record, 22, 31) != Some(file_hash % 10_000_000_000) {
                    return Err(error(ProblemCode::NachaEntryHash, "the file control's entry hash does not match the file's entries"));
                }
                blocks = number(&record, 8, 13);
                seen_control = true;
            }
            _ => return Err(error(ProblemCode::NachaRecordType, "the records of a return file come in the order 1, 5, 6, 7, 8, 9")),
        }
    }
    if !seen_control {
        return Err(FileError::new(ProblemCode::NachaRecordType, "end of file", "the file ends without a file control record"));
    }
    if records.number % BLOCKING_FACTOR != 0 || blocks != Some(records.number / BLOCKING_FACTOR) {
        return Err(FileError::new(
            ProblemCode::NachaBlocking,
            "end of file",
            "the file is padded with 9s to a multiple of 10 records, as its block count says",
        ));
    }
    Ok(entries)
}

/// Builds a return file, for tests and tools: one batch, one entry and addenda per return.
pub fn write_returns(returns: &[(&str, &str, u64)]) -> Vec<u8> {
    let pad = |text: &str, width: usize| -> String { format!("{text:<width$}").chars().take(width).collect() };
    let mut records = vec![format!("101 091000019 0910000192611221200A094101{}{}{}", pad("FSPC", 23), pad("BANK", 23), pad("", 8))];
    records.push(format!(
        "5225{}{}{}WEB{}{}261122   1091000010000001",
        pad("FSPC", 16),
        pad("", 20),
        pad("1431234567", 10),
        pad("RETURN", 10),
        pad("", 6)
    ));
    let (mut count, mut hash) = (0u64, 0u64);
    for (index, (code, trace, cents)) in returns.iter().enumerate() {
        let routing = 91_000_019u64;
        records.push(format!(
            "626{routing:08}1{}{cents:010}{}{}  1{}",
            pad("000123456789", 17),
            pad("PAYER", 15),
            pad("", 22),
            format!("09100001{:07}", index + 1)
        ));
        records.push(format!(
            "799{}{}{}{}{}{}",
            pad(code, 3),
            pad(trace, 15),
            pad("", 6),
            "09100001",
            pad("", 44),
            format!("09100001{:07}", index + 1)
        ));
        count += 2;
        hash += routing;
    }
    let hash = hash % 10_000_000_000;
    records.push(format!(
        "8225{count:06}{hash:010}{:012}{:012}{}{}{}091000010000001",
        0,
        0,
        pad("1431234567", 10),
        pad("", 19),
        pad("", 6)
    ));
    let blocks = (records.len() as u64 + 1).div_ceil(BLOCKING_FACTOR);
    records.push(format!("9{:06}{blocks:06}{count:08}{hash:010}{:012}{:012}{}", 1, 0, 0, pad("", 39)));
    while records.len() as u64 % BLOCKING_FACTOR != 0 {
        records.push("9".repeat(94));
    }
    for record in &records {
        assert_eq!(record.len(), 94, "record `{record}`");
    }
    (records.join("\n") + "\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_return_with_its_code_and_original_trace() {
        let file = write_returns(&[("R01", "091000010000042", 5000), ("R03", "091000010000043", 2500)]);
        let returns = read_returns(file.as_slice(), 10).unwrap();
        assert_eq!(returns.len(), 2);
        assert_eq!(read_returns(file.as_slice(), 1).unwrap_err().code, "TOO_MANY_LINES");
        assert_eq!(
            (returns[0].code.as_str(), returns[0].original_trace.as_str(), returns[0].amount_cents),
            ("R01", "091000010000042", 5000)
        );
        assert_eq!((returns[1].code.as_str(), returns[1].record), ("R03", 5));
    }

    #[test]
    fn a_broken_return_file_is_refused() {
        let file = String::from_utf8(write_returns(&[("R01", "091000010000042", 5000)])).unwrap();
        let no_addenda: String = file.lines().filter(|r| !r.starts_with('7')).map(|r| format!("{r}\n")).collect();
        assert!(read_returns(no_addenda.as_bytes(), 10).is_err());
        let bad_count = file.replacen("8225000002", "8225000003", 1);
        assert_eq!(read_returns(bad_count.as_bytes(), 10).unwrap_err().code, "NACHA_CONTROL_TOTALS");
        assert!(read_returns(&b"garbage"[..], 10).is_err());
    }
}
