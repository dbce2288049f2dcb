//! An acknowledgment's problems grouped by code, as a sender reads them: errors first, then
//! warnings, then notices, the most frequent first, each with its first few lines. The CLI
//! and the web console show the same groups.

use std::collections::BTreeMap;

/// How many first line numbers a group shows.
pub const LINES_SHOWN: usize = 5;

/// The lines with one problem code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemGroup {
    pub code: String,
    /// ERROR, WARNING or NOTICE.
    pub severity: String,
    /// How many lines have the code (a line with it twice counts once).
    pub count: u64,
    /// Its first lines (at most [`LINES_SHOWN`]), in file order.
    pub first_lines: Vec<u64>,
    last_line: Option<u64>,
}

/// Groups `(line, code, severity)` problems, given in file order.
pub fn group_problems<'a>(problems: impl IntoIterator<Item = (u64, &'a str, &'a str)>) -> Vec<ProblemGroup> {
    let mut groups: BTreeMap<&str, ProblemGroup> = BTreeMap::new();
    for (line, code, severity) in problems {
        let group = groups.entry(code).or_insert_with(|| ProblemGroup {
            code: code.to_owned(),
            severity: severity.to_owned(),
            count: 0,
            first_lines: Vec::new(),
            last_line: None,
        });
        // Problems come in file order, so a line repeating a code follows itself.
        if group.last_line == Some(line) {
            continue;
        }
        group.last_line = Some(line);
        group.count += 1;
        if group.first_lines.len() < LINES_SHOWN {
            group.first_lines.push(line);
        }
    }
    let rank = |severity: &str| match severity {
        "ERROR" => 0,
        "WARNING" => 1,
        _ => 2,
    };
    let mut groups: Vec<ProblemGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| {
        (rank(&a.severity), std::cmp::Reverse(a.count), &a.code).cmp(&(rank(&b.severity), std::cmp::Reverse(b.count), &b.code))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_come_first_then_the_most_frequent_with_their_first_lines_each_line_once() {
        let problems = [
            (2, "LATE_REMITTANCE", "WARNING"),
            (3, "LATE_REMITTANCE", "WARNING"),
            (4, "BAD_AMOUNT", "ERROR"),
            (5, "UNKNOWN_CASE", "NOTICE"),
            (6, "UNKNOWN_CASE", "NOTICE"),
            (6, "UNKNOWN_CASE", "NOTICE"),
            (7, "UNKNOWN_CASE", "NOTICE"),
            (8, "LATE_REMITTANCE", "WARNING"),
            (9, "LATE_REMITTANCE", "WARNING"),
            (10, "LATE_REMITTANCE", "WARNING"),
            (11, "LATE_REMITTANCE", "WARNING"),
        ];
        let groups = group_problems(problems);
        let summary: Vec<(&str, u64, Vec<u64>)> = groups.iter().map(|g| (g.code.as_str(), g.count, g.first_lines.clone())).collect();
        assert_eq!(
            summary,
            [
                ("BAD_AMOUNT", 1, vec![4]),
                ("LATE_REMITTANCE", 6, vec![2, 3, 8, 9, 10]),
                ("UNKNOWN_CASE", 3, vec![5, 6, 7]),
            ]
        );
        assert!(group_problems([]).is_empty());
    }
}
