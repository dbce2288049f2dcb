//! Fuzzing harnesses: each drives one parser over arbitrary bytes to its end, the way the
//! gateway reads an upload, and checks what any answer must satisfy. The proptest suite
//! (`tests/parser_fuzz.rs`, 10,000 cases each in CI) calls them, and so do the `cargo fuzz`
//! targets in `fuzz/`, so a crash found by one is a test case of the other.
//!
//! A harness panics only on a defect: a parser that panics, or an answer that breaks the
//! invariants below. Refusing the bytes is a good answer.

use super::{remittance_lines, DeclaredTotals, FileLimits, RemittanceFormat};

/// Small limits, so that fuzzing explores refusals too (a record or a file too large).
const LIMITS: FileLimits = FileLimits { max_lines: 500, max_record_bytes: 4 * 1024 };

/// A remittance file of `format`: line numbers increase, each line's problems name their
/// field, and no more lines than the limit.
pub fn remittance(format: RemittanceFormat, bytes: &[u8]) {
    let declared = DeclaredTotals::default();
    let Ok(lines) = remittance_lines(format, std::io::Cursor::new(bytes.to_vec()), declared, "B-1", LIMITS) else { return };
    let mut expected = 1;
    for line in lines {
        let Ok(line) = line else { return };
        assert!(line.line >= expected, "{format:?}: line {} after {}", line.line, expected - 1);
        expected = line.line + 1;
        assert!(line.line <= LIMITS.max_lines, "{format:?}: line {} past the limit", line.line);
        for problem in &line.format_problems {
            assert!(!problem.field.is_empty(), "{format:?}: a problem without its field: {problem:?}");
        }
    }
}

/// An ACH return file: no more entries than the limit, each named by its record.
pub fn ach_returns(bytes: &[u8]) {
    if let Ok(entries) = super::ach_returns::read_returns(bytes, 1000) {
        assert!(entries.len() <= 1000, "more entries than the limit");
        for entry in entries {
            assert!(entry.record >= 1, "{entry:?}");
        }
    }
}

/// A case registry file: a refusal lists its problems, each named by a line of the file.
pub fn registry(bytes: &[u8]) {
    match super::registry::read_registry(bytes, LIMITS) {
        Ok(rows) => assert!(rows.len() as u64 <= LIMITS.max_lines),
        Err(problems) => {
            assert!(!problems.is_empty(), "a refusal says why");
            // Records end at LF, CR LF or a lone CR, as the CSV reader reads them.
            let lone_cr = bytes.windows(2).filter(|pair| pair[0] == b'\r' && pair[1] != b'\n').count() + usize::from(bytes.last() == Some(&b'\r'));
            let lines = (bytes.iter().filter(|&&b| b == b'\n').count() + lone_cr) as u64 + 1;
            for problem in &problems {
                assert!(problem.line <= lines, "problem at line {} of a {lines}-line file", problem.line);
            }
        }
    }
}
