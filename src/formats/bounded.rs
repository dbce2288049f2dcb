//! A reader that stops one record from growing past its limit while it is still being read.
//!
//! The csv crate and quick-xml buffer a whole record (a CSV row, an XML tag or text node)
//! before handing it over, so a limit checked on the finished record comes too late: an
//! unclosed quote or a 500 MB text node is already in memory. Wrapped around their input,
//! [`Budgeted`] counts the bytes pulled since the parser last finished a record and fails the
//! read once they pass the budget, so memory stays near the limit whatever the file holds.

use std::io::{self, Read};

/// The error a [`Budgeted`] reader gives once a record outgrows its budget.
#[derive(Debug)]
pub struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record is longer than the gateway's limit")
    }
}

impl std::error::Error for RecordTooLong {}

/// True when `error` is a [`Budgeted`] reader's refusal.
pub fn is_too_long(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<RecordTooLong>())
}

/// The read-ahead of the parsers' own buffers (csv's and `BufReader`'s are 8 KiB): bytes
/// pulled for the next record before the current one is finished.
pub const READ_AHEAD_BYTES: usize = 16 * 1024;

/// `inner`, with at most `budget` bytes read between two [`Budgeted::mark`]s.
pub struct Budgeted<R> {
    inner: R,
    since_mark: usize,
    budget: usize,
}

impl<R> Budgeted<R> {
    /// A reader whose records may each be `max_record_bytes` long (plus the parser's
    /// read-ahead, so a record at the limit still passes).
    pub fn new(inner: R, max_record_bytes: usize) -> Budgeted<R> {
        Budgeted { inner, since_mark: 0, budget: max_record_bytes.saturating_add(READ_AHEAD_BYTES) }
    }

    /// A record was finished: the next one starts with the whole budget.
    pub fn mark(&mut self) {
        self.since_mark = 0;
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let room = self.budget - self.since_mark.min(self.budget);
        if room == 0 && !buffer.is_empty() {
            return Err(io::Error::other(RecordTooLong));
        }
        let wanted = buffer.len().min(room);
        let read = self.inner.read(&mut buffer[..wanted])?;
        self.since_mark += read;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_past_its_budget_fails_the_read_and_a_mark_restores_it() {
        let input = vec![b'x'; 100 * 1024];
        let mut reader = Budgeted::new(&input[..], 1024);
        let mut sink = vec![0; 4096];
        let mut total = 0;
        let error = loop {
            match reader.read(&mut sink) {
                Ok(read) => total += read,
                Err(error) => break error,
            }
        };
        assert!(is_too_long(&error));
        assert_eq!(total, 1024 + READ_AHEAD_BYTES, "never reads past the budget");
        reader.mark();
        assert_eq!(reader.read(&mut sink).unwrap(), 4096);
    }
}
