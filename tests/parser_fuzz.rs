//! The fuzzing harnesses of `gateway::formats::fuzz` as property tests (#13, item 7): each
//! parser over arbitrary bytes and over valid files with random edits, 10,000 cases each, and
//! DED segments (valid ones edited) in a NACHA file, 10,000 cases. No panic, and every answer
//! keeps the harness's invariants.

mod common;

use gateway::domain::remittance::RawLine;
use gateway::formats::ach_returns::write_returns;
use gateway::formats::csv_remittance::write_csv;
use gateway::formats::fuzz;
use gateway::formats::nacha::writer::{ded_segment, write_lines};
use gateway::formats::xml_remittance::write_xml;
use gateway::formats::RemittanceFormat;
use proptest::prelude::*;

const CASES: u32 = 10_000;

fn lines() -> Vec<RawLine> {
    [("12345678", "123456789", "184.62", "Y"), ("", "223456789", "0.01", "N"), ("22345678", "323456789", "99999999.99", "")]
        .iter()
        .enumerate()
        .map(|(index, (case, ssn, amount, terminated))| RawLine {
            line: index as u64 + 1,
            case_number: Some((*case).to_owned()),
            employee_ssn: Some((*ssn).to_owned()),
            last_name: Some("O'Brien-Smith".to_owned()),
            pay_date: Some("2026-11-13".to_owned()),
            amount: Some((*amount).to_owned()),
            fips_code: Some("29051".to_owned()),
            medical_support: Some("Y".to_owned()),
            employment_terminated: Some((*terminated).to_owned()).filter(|t| !t.is_empty()),
            employer_fein: Some("431234567".to_owned()),
            employer_name: Some("Acme & Sons <MO>".to_owned()),
            ..RawLine::default()
        })
        .collect()
}

fn nacha_file() -> Vec<u8> {
    let lines: Vec<RawLine> = lines().into_iter().map(|l| RawLine { pay_date: Some("261113".to_owned()), ..l }).collect();
    write_lines("ACME", "431234567", &lines)
}

/// A valid file of every kind the gateway reads.
fn valid(kind: usize) -> Vec<u8> {
    match kind {
        0 => write_csv(&lines()),
        1 => write_xml("B-1", &lines()),
        2 => nacha_file(),
        3 => write_returns(&[("R01", "091000010000001", 184_62), ("R03", "091000010000002", 1)]),
        _ => common::SPEC_REGISTRY.as_bytes().to_vec(),
    }
}

fn run(kind: usize, bytes: &[u8]) {
    match kind {
        0 => fuzz::remittance(RemittanceFormat::Csv, bytes),
        1 => fuzz::remittance(RemittanceFormat::Xml, bytes),
        2 => fuzz::remittance(RemittanceFormat::Nacha, bytes),
        3 => fuzz::ach_returns(bytes),
        _ => fuzz::registry(bytes),
    }
}

/// An edit of a file: replace, insert or delete a byte, or repeat a slice (long records,
/// deep nesting, many lines).
#[derive(Clone, Debug)]
enum Edit {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Repeat(prop::sample::Index, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
        (any::<prop::sample::Index>(), 1usize..40, 1usize..200).prop_map(|(i, len, times)| Edit::Repeat(i, len, times)),
    ]
}

fn apply(mut file: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if file.is_empty() {
            file.push(b'x');
        }
        match edit {
            Edit::Replace(at, byte) => {
                let at = at.index(file.len());
                file[at] = *byte;
            }
            Edit::Insert(at, byte) => {
                let at = at.index(file.len() + 1);
                file.insert(at, *byte);
            }
            Edit::Delete(at) => {
                let at = at.index(file.len());
                file.remove(at);
            }
            Edit::Repeat(at, len, times) => {
                let at = at.index(file.len());
                let slice: Vec<u8> = file[at..(at + len).min(file.len())].to_vec();
                let repeated: Vec<u8> = slice.iter().copied().cycle().take(slice.len() * times).collect();
                file.splice(at..at, repeated);
            }
        }
    }
    file
}

/// One parser's two properties, 10,000 cases each: arbitrary bytes, and a valid file edited.
macro_rules! fuzzed {
    ($($name:ident: $kind:expr),* $(,)?) => {
        $(mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

                #[test]
                fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
                    run($kind, &bytes);
                }

                #[test]
                fn never_panics_on_an_edited_valid_file(edits in proptest::collection::vec(edit(), 1..6)) {
                    run($kind, &apply(valid($kind), &edits));
                }
            }
        })*
    };
}

fuzzed!(csv: 0, xml: 1, nacha: 2, ach_returns: 3, registry: 4);

/// A DED segment as `DED*` then fields: valid ones edited, so the cases reach the segment's
/// own rules, not only its first refusal.
fn ded_text() -> impl Strategy<Value = String> {
    let valid = ded_segment(&lines()[0]);
    (proptest::collection::vec(edit(), 0..4), "[ -~]{0,40}").prop_map(move |(edits, tail)| {
        let edited = apply(valid.clone().into_bytes(), &edits);
        let text: String = String::from_utf8_lossy(&edited).chars().filter(|c| (' '..='~').contains(c)).collect();
        format!("{text}{tail}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_ded_segment_breaks_the_nacha_parser(segment in ded_text(), entry in 0usize..3) {
        // A CCD+ file whose one entry carries a DED segment of any printable text.
        let mut file = String::from_utf8(nacha_file()).unwrap();
        let addenda: Vec<(usize, &str)> = file.match_indices("\n7").collect();
        if let Some(&(at, _)) = addenda.get(entry) {
            let start = at + 4;
            let end = (start + 80).min(file.len());
            let padded = format!("{segment:<80}");
            file.replace_range(start..end, &padded[..end - start]);
        }
        fuzz::remittance(RemittanceFormat::Nacha, file.as_bytes());
    }
}

#[test]
fn the_valid_files_are_read() {
    // The edits start from files the parsers accept, so the cases explore near them.
    for (kind, format) in [(0, RemittanceFormat::Csv), (1, RemittanceFormat::Xml), (2, RemittanceFormat::Nacha)] {
        let input = std::io::Cursor::new(valid(kind));
        let read: Vec<RawLine> = gateway::formats::remittance_lines(format, input, Default::default(), "B-1", gateway::formats::FileLimits::STANDARD)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read.len(), 3, "{format:?}");
        assert!(read.iter().all(|l| l.format_problems.is_empty()), "{format:?}: {read:?}");
    }
    assert_eq!(gateway::formats::ach_returns::read_returns(valid(3).as_slice(), 10).unwrap().len(), 2);
    assert_eq!(gateway::formats::registry::read_registry(valid(4).as_slice(), gateway::formats::FileLimits::STANDARD).unwrap().len(), 3);
    assert!(String::from_utf8(nacha_file()).unwrap().contains("\n7"), "a NACHA file has addenda records");
}
