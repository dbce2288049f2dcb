//! The remittance parsers: fixtures for each format's rules and refusals, round trips of
//! random valid lines, and no panic on any input.

use gateway::domain::remittance::{DateStyle, ProblemCode, RawLine};
use gateway::domain::Money;
use gateway::formats::csv_remittance::write_csv;
use gateway::formats::nacha::writer::{ded_segment, write_file, EntryToWrite};
use gateway::formats::xml_remittance::write_xml;
use gateway::formats::{remittance_lines, DeclaredTotals, FileError, RemittanceFormat};
use proptest::prelude::*;

fn read(format: RemittanceFormat, bytes: &[u8], declared: DeclaredTotals) -> Result<Vec<RawLine>, FileError> {
    remittance_lines(format, std::io::Cursor::new(bytes.to_vec()), declared, "B-1", gateway::formats::FileLimits::STANDARD)?.collect()
}

fn refusal(format: RemittanceFormat, bytes: &[u8]) -> FileError {
    read(format, bytes, DeclaredTotals::default()).expect_err("the file must be refused")
}

const NONE: DeclaredTotals = DeclaredTotals { line_count: None, total: None };

// ---------------------------------------------------------------- CSV

#[test]
fn csv_headers_are_case_insensitive_in_any_order_with_a_bom() {
    let file = "\u{feff}AMOUNT,Pay_Date,employee_last_name,EMPLOYEE_SSN,case_number,employer_fein\r\n\
                184.62,11/13/2026,Smith,123-45-6789,12345678,43-1234567\r\n\
                \"1,000.00\",2026-11-13,\"O'Neil, Jr\",123456789,,431234567\r\n";
    let lines = read(RemittanceFormat::Csv, file.as_bytes(), NONE).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].line, lines[0].amount.as_deref(), lines[0].pay_date.as_deref()), (1, Some("184.62"), Some("11/13/2026")));
    assert_eq!(lines[0].pay_date_style, Some(DateStyle::IsoOrUs));
    assert_eq!((lines[1].line, lines[1].last_name.as_deref(), lines[1].case_number.as_deref()), (2, Some("O'Neil, Jr"), Some("")));
    assert_eq!(lines[0].fips_code, None, "absent optional column");
}

#[test]
fn csv_header_problems_refuse_the_file() {
    let refused = |header: &str| refusal(RemittanceFormat::Csv, format!("{header}\n").as_bytes()).code;
    assert_eq!(refused("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,colour"), "HEADER_UNKNOWN_COLUMN");
    assert_eq!(refused("employer_fein,case_number,employee_ssn,employee_last_name,pay_date"), "HEADER_MISSING_COLUMN");
    assert_eq!(refused("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,AMOUNT"), "HEADER_DUPLICATE_COLUMN");
    assert_eq!(refusal(RemittanceFormat::Csv, b"").code, "HEADER_MISSING");
}

#[test]
fn csv_rows_of_the_wrong_width_and_declared_totals_that_disagree_refuse_the_file() {
    let header = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n";
    let short = format!("{header}431234567,12345678,123456789,Smith,2026-11-13\n");
    let error = refusal(RemittanceFormat::Csv, short.as_bytes());
    assert_eq!((error.code, error.position.as_str()), ("ROW_FIELD_COUNT", "data row 1"));

    let file = format!("{header}431234567,12345678,123456789,Smith,2026-11-13,100.00\n431234567,,123456789,Smith,2026-11-13,84.62\n");
    let right = DeclaredTotals { line_count: Some(2), total: Some(Money::from_cents(18462)) };
    assert_eq!(read(RemittanceFormat::Csv, file.as_bytes(), right).unwrap().len(), 2);
    for wrong in
        [DeclaredTotals { line_count: Some(3), total: None }, DeclaredTotals { line_count: None, total: Some(Money::from_cents(18463)) }]
    {
        assert_eq!(read(RemittanceFormat::Csv, file.as_bytes(), wrong).unwrap_err().code, "CONTROL_TOTAL_MISMATCH");
    }
}

#[test]
fn csv_that_is_not_csv_is_refused() {
    let header = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n";
    let unclosed = format!("{header}431234567,\"12345678,123456789,Smith,2026-11-13,1.00\n");
    assert!(matches!(refusal(RemittanceFormat::Csv, unclosed.as_bytes()).code, "ROW_FIELD_COUNT" | "FILE_NOT_CSV" | "RECORD_TOO_LONG"));
    let latin1 = [header.as_bytes(), b"431234567,12345678,123456789,M\xfcller,2026-11-13,1.00\n"].concat();
    assert_eq!(refusal(RemittanceFormat::Csv, &latin1).code, "FILE_NOT_UTF8");
}

// ---------------------------------------------------------------- XML

const SPEC_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Remittance xmlns="urn:mo-fspc:remittance:1">
  <Header>
    <BatchId>B-1</BatchId>
    <LineCount>2</LineCount>
    <TotalAmount>369.24</TotalAmount>
  </Header>
  <Employer fein="431234567" name="Acme &amp; Sons">
    <Payment>
      <CaseNumber>12345678</CaseNumber>
      <EmployeeSSN>123456789</EmployeeSSN>
      <LastName>Smith</LastName>
      <FirstName>John</FirstName>
      <PayDate>2026-11-13</PayDate>
      <Amount>184.62</Amount>
      <FIPS>29051</FIPS>
      <MedicalSupport>N</MedicalSupport>
      <EmploymentTerminated>N</EmploymentTerminated>
    </Payment>
    <!-- a comment between payments -->
    <Payment>
      <CaseNumber/>
      <EmployeeSSN>123456789</EmployeeSSN>
      <LastName><![CDATA[O'Neil]]></LastName>
      <PayDate>2026-11-13</PayDate>
      <Amount>184.62</Amount>
    </Payment>
  </Employer>
</Remittance>
"#;

#[test]
fn the_spec_example_xml_is_read() {
    let lines = read(RemittanceFormat::Xml, SPEC_XML.as_bytes(), NONE).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].employer_name.as_deref(), Some("Acme & Sons"));
    assert_eq!(lines[0].employer_fein.as_deref(), Some("431234567"));
    assert_eq!((lines[0].line, lines[0].fips_code.as_deref(), lines[0].first_name.as_deref()), (1, Some("29051"), Some("John")));
    assert_eq!((lines[1].line, lines[1].last_name.as_deref(), lines[1].case_number.as_deref()), (2, Some("O'Neil"), Some("")));
    assert_eq!(lines[1].pay_date_style, Some(DateStyle::Iso));
}

#[test]
fn a_doctype_is_refused_and_no_entity_is_expanded() {
    let laughs = SPEC_XML.replace(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>",
    );
    assert_eq!(refusal(RemittanceFormat::Xml, laughs.as_bytes()).code, "XML_DOCTYPE_FORBIDDEN");
    let external = SPEC_XML.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "<!DOCTYPE r SYSTEM \"file:///etc/passwd\">");
    assert_eq!(refusal(RemittanceFormat::Xml, external.as_bytes()).code, "XML_DOCTYPE_FORBIDDEN");
    // Without a DOCTYPE an entity reference is simply an error.
    let undeclared = SPEC_XML.replace("<LastName>Smith</LastName>", "<LastName>&xxe;</LastName>");
    assert_eq!(refusal(RemittanceFormat::Xml, undeclared.as_bytes()).code, "XML_MALFORMED");
}

#[test]
fn xml_structure_problems_refuse_the_file() {
    let cases = [
        (SPEC_XML.replace(" xmlns=\"urn:mo-fspc:remittance:1\"", ""), "XML_NAMESPACE"),
        (SPEC_XML.replace("urn:mo-fspc:remittance:1", "urn:other"), "XML_NAMESPACE"),
        (SPEC_XML.replace("<BatchId>B-1</BatchId>", "<BatchId>B-2</BatchId>"), "XML_BATCH_ID_MISMATCH"),
        (SPEC_XML.replace("<LineCount>2</LineCount>", "<LineCount>3</LineCount>"), "CONTROL_TOTAL_MISMATCH"),
        (SPEC_XML.replace("<TotalAmount>369.24</TotalAmount>", "<TotalAmount>369.25</TotalAmount>"), "CONTROL_TOTAL_MISMATCH"),
        (SPEC_XML.replace("<LineCount>2</LineCount>", ""), "CONTROL_TOTALS_MISSING"),
        (SPEC_XML.replace("<FIPS>29051</FIPS>", "<Colour>red</Colour>"), "XML_UNKNOWN_ELEMENT"),
        (SPEC_XML.replace("</Remittance>", ""), "XML_MALFORMED"),
        (SPEC_XML.replace("</Amount>", "</Amont>"), "XML_MALFORMED"),
        (format!("{SPEC_XML}<Remittance xmlns=\"urn:mo-fspc:remittance:1\"/>"), "XML_UNKNOWN_ELEMENT"),
        (SPEC_XML.replace("<LastName>Smith</LastName>", &format!("<LastName>{}</LastName>", "x".repeat(5000))), "RECORD_TOO_LONG"),
    ];
    for (file, code) in cases {
        assert_eq!(refusal(RemittanceFormat::Xml, file.as_bytes()).code, code, "{file}");
    }
}

// ---------------------------------------------------------------- NACHA

fn ded_line(case: &str, date: &str, amount: &str, ssn: &str) -> RawLine {
    RawLine {
        case_number: Some(case.into()),
        pay_date: Some(date.into()),
        amount: Some(amount.into()),
        employee_ssn: Some(ssn.into()),
        ..RawLine::default()
    }
}

fn entry(amount_cents: u64, segments: Vec<String>) -> EntryToWrite {
    EntryToWrite { routing: 91_000_019, amount_cents, prenote: false, segments }
}

#[test]
fn a_ccd_plus_file_is_read_with_its_ded_fields() {
    let file = write_file(
        "CCD",
        "ACME MFG",
        "431234567",
        &[
            entry(18462, vec!["DED*CS*12345678*261113*18462*123456789*N*SMITH J*29051*\\".into()]),
            entry(10000, vec!["DED*CS*22345678*261113*10000*223456789*Y**29051*Y\\".into()]),
        ],
    );
    let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!((first.line, first.record), (1, Some(3)));
    assert_eq!(first.employer_fein.as_deref(), Some("431234567"));
    assert_eq!(first.employer_name.as_deref(), Some("ACME MFG"));
    assert_eq!(
        (first.case_number.as_deref(), first.pay_date.as_deref(), first.amount.as_deref()),
        (Some("12345678"), Some("261113"), Some("184.62"))
    );
    assert_eq!((first.employee_ssn.as_deref(), first.fips_code.as_deref()), (Some("123456789"), Some("29051")));
    assert_eq!(first.pay_date_style, Some(DateStyle::Yymmdd));
    assert!(first.format_problems.is_empty());
    assert_eq!((lines[1].medical_support.as_deref(), lines[1].employment_terminated.as_deref()), (Some("Y"), Some("Y")));
}

#[test]
fn a_ctx_entry_joins_several_addenda_before_reading_its_ded_segments() {
    let segments: Vec<String> =
        (0..5).map(|i| ded_segment(&ded_line(&format!("1234567{i}"), "20261113", &format!("{}.00", 10 + i), "123456789"))).collect();
    // 5 segments of ~45 characters span 3 addenda records of 80.
    let file = write_file("CTX", "PAYROLL CO", "431234567", &[entry(6000, segments)]);
    let text = String::from_utf8(file.clone()).unwrap();
    assert_eq!(text.lines().filter(|r| r.starts_with('7')).count(), 3);
    let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
    let cases: Vec<_> = lines.iter().map(|l| l.case_number.clone().unwrap()).collect();
    assert_eq!(cases, ["12345670", "12345671", "12345672", "12345673", "12345674"]);
    assert!(lines.iter().all(|l| l.pay_date_style == Some(DateStyle::Ccyymmdd) && l.format_problems.is_empty()));
    assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

#[test]
fn an_entry_whose_amount_disagrees_with_its_ded_is_a_line_problem() {
    let file = write_file("CCD", "ACME", "431234567", &[entry(18463, vec!["DED*CS*12345678*261113*18462*123456789*N\\".into()])]);
    let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
    assert_eq!(lines[0].format_problems[0].code, ProblemCode::AmountMismatch);
}

#[test]
fn generators_leniencies_are_accepted() {
    // Missing final backslash, trailing spaces, lower case, an empty trailing element.
    for segment in [
        "DED*CS*12345678*261113*18462*123456789*N",
        "DED*CS*12345678*261113*18462*123456789*N\\     ",
        "ded*cs*12345678*261113*18462*123456789*n\\",
        "DED*CS*12345678*261113*18462*123456789*N*SMITH J*29051*\\",
        "DED*CS*12345678*261113*18462*123456789*N****",
    ] {
        let file = write_file("CCD", "ACME", "431234567", &[entry(18462, vec![segment.into()])]);
        let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap_or_else(|e| panic!("{segment}: {e}"));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].format_problems.is_empty(), "{segment}: {:?}", lines[0].format_problems);
        assert_eq!(lines[0].amount.as_deref(), Some("184.62"));
    }
    // CRLF line ends, or none at all.
    let file = write_file("CCD", "ACME", "431234567", &[entry(18462, vec!["DED*CS*12345678*261113*18462*123456789*N\\".into()])]);
    let text = String::from_utf8(file).unwrap();
    for variant in [text.replace('\n', "\r\n"), text.replace('\n', "")] {
        assert_eq!(read(RemittanceFormat::Nacha, variant.as_bytes(), NONE).unwrap().len(), 1);
    }
}

#[test]
fn a_prenote_is_read_as_a_prenote() {
    let mut prenote = entry(0, vec!["DED*CS*12345678*261113*0*123456789*N\\".into()]);
    prenote.prenote = true;
    let file = write_file("CCD", "ACME", "431234567", &[prenote]);
    let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
    assert!(lines[0].prenote);
    assert_eq!(lines[0].amount.as_deref(), Some("0.00"));
}

#[test]
fn an_entry_without_a_ded_is_one_line_with_a_problem() {
    let file = write_file("CCD", "ACME", "431234567", &[entry(100, vec!["REF*XX*NOT A DED\\".into()])]);
    let lines = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].format_problems[0].code, ProblemCode::DedMalformed);
}

/// Replaces the characters at 1-based positions `from..` of the first record of `kind`.
fn patch(file: &[u8], kind: char, from: usize, text: &str) -> Vec<u8> {
    let mut records: Vec<String> = String::from_utf8(file.to_vec()).unwrap().lines().map(str::to_owned).collect();
    let record = records.iter_mut().find(|r| r.starts_with(kind)).unwrap();
    record.replace_range(from - 1..from - 1 + text.len(), text);
    (records.join("\n") + "\n").into_bytes()
}

#[test]
fn control_totals_hashes_and_blocking_that_disagree_refuse_the_file() {
    let good = write_file("CCD", "ACME", "431234567", &[entry(18462, vec!["DED*CS*12345678*261113*18462*123456789*N\\".into()])]);
    assert!(read(RemittanceFormat::Nacha, &good, NONE).is_ok());
    let cases = [
        (patch(&good, '8', 5, "000003"), "NACHA_CONTROL_TOTALS"), // batch entry/addenda count
        (patch(&good, '8', 11, "0000000001"), "NACHA_ENTRY_HASH"), // batch entry hash
        (patch(&good, '8', 33, "000000018463"), "NACHA_CONTROL_TOTALS"), // batch credit total
        (patch(&good, '9', 22, "0000000001"), "NACHA_ENTRY_HASH"), // file entry hash
        (patch(&good, '9', 44, "000000099999"), "NACHA_CONTROL_TOTALS"), // file credit total
        (patch(&good, '9', 8, "000002"), "NACHA_CONTROL_TOTALS"), // block count
        (patch(&good, '1', 35, "095"), "NACHA_FILE_HEADER"),
        (patch(&good, '5', 51, "PPD"), "NACHA_BATCH_HEADER"),
        (patch(&good, '6', 2, "27"), "NACHA_TRANSACTION_CODE"),
    ];
    for (file, code) in cases {
        assert_eq!(refusal(RemittanceFormat::Nacha, &file).code, code);
    }
    let text = String::from_utf8(good).unwrap();
    let unpadded: String = text.lines().filter(|r| *r != "9".repeat(94)).map(|r| format!("{r}\n")).collect();
    assert_eq!(refusal(RemittanceFormat::Nacha, unpadded.as_bytes()).code, "NACHA_BLOCKING");
    let short_record = text.replacen("ACME", "ACM", 1).replacen("ACME", "ACME", 1);
    let short_record = short_record.replacen(&format!("{:<16}", "ACM"), "ACM", 1);
    assert_eq!(refusal(RemittanceFormat::Nacha, short_record.as_bytes()).code, "NACHA_RECORD_LENGTH");
    let bad_type = text.replacen("\n5", "\n4", 1);
    assert_eq!(refusal(RemittanceFormat::Nacha, bad_type.as_bytes()).code, "NACHA_RECORD_TYPE");
}

// ---------------------------------------------------------------- properties

/// A random line every format can carry: digits-only SSN, YYYY-MM-DD in CSV/XML.
fn arbitrary_line() -> impl Strategy<Value = RawLine> {
    (
        "[0-9]{8}|",
        "[1-8][0-9]{8}",
        // XML trims text at its ends, so names never start or end with a space here.
        "[A-Za-z]([A-Za-z '\\-]{0,18}[A-Za-z])?",
        (2020i32..2027, 1u32..13, 1u32..29),
        // Up to 8,000,000.00 a line, so that a CTX entry of 12 lines fits NACHA's 10 digits.
        1i64..800_000_000,
        proptest::option::of("29[0-9]{3}"),
        proptest::option::of(prop_oneof!["Y", "N", "W"]),
        proptest::option::of(prop_oneof!["Y", "N"]),
        "[0-9]{9}",
        proptest::option::of("[A-Za-z0-9&<>\"']([A-Za-z0-9&<>\"' ]{0,18}[A-Za-z0-9&<>\"'])?"),
    )
        .prop_map(|(case, ssn, last, (y, m, d), cents, fips, medical, terminated, fein, name)| RawLine {
            case_number: Some(case),
            employee_ssn: Some(ssn),
            last_name: Some(last),
            pay_date: Some(format!("{y:04}-{m:02}-{d:02}")),
            amount: Some(Money::from_cents(cents).to_string()),
            fips_code: fips,
            medical_support: medical,
            employment_terminated: terminated,
            employer_fein: Some(fein),
            employer_name: name,
            ..RawLine::default()
        })
}

fn numbered(mut lines: Vec<RawLine>) -> Vec<RawLine> {
    for (index, line) in lines.iter_mut().enumerate() {
        line.line = index as u64 + 1;
    }
    lines
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn csv_round_trips(lines in proptest::collection::vec(arbitrary_line(), 1..20)) {
        let lines = numbered(lines);
        let read_back = read(RemittanceFormat::Csv, &write_csv(&lines), NONE).unwrap();
        let expected: Vec<RawLine> = lines
            .iter()
            .map(|l| RawLine {
                pay_date_style: Some(DateStyle::IsoOrUs),
                // CSV has every column: absent values come back as empty cells.
                fips_code: Some(l.fips_code.clone().unwrap_or_default()),
                medical_support: Some(l.medical_support.clone().unwrap_or_default()),
                employment_terminated: Some(l.employment_terminated.clone().unwrap_or_default()),
                employer_name: Some(l.employer_name.clone().unwrap_or_default()),
                first_name: Some(String::new()),
                employee_id: Some(String::new()),
                ..l.clone()
            })
            .collect();
        prop_assert_eq!(read_back, expected);
    }

    #[test]
    fn xml_round_trips(lines in proptest::collection::vec(arbitrary_line(), 1..20)) {
        let lines = numbered(lines);
        let read_back = read(RemittanceFormat::Xml, &write_xml("B-1", &lines), NONE).unwrap();
        let expected: Vec<RawLine> = lines.iter().map(|l| RawLine { pay_date_style: Some(DateStyle::Iso), ..l.clone() }).collect();
        prop_assert_eq!(read_back, expected);
    }

    #[test]
    fn nacha_round_trips(lines in proptest::collection::vec(arbitrary_line(), 1..12), ctx in any::<bool>()) {
        let lines = numbered(lines);
        let dated: Vec<RawLine> = lines
            .iter()
            .map(|l| {
                let iso = l.pay_date.clone().unwrap();
                let date = if ctx { iso.replace('-', "") } else { iso[2..].replace('-', "") };
                RawLine { pay_date: Some(date), ..l.clone() }
            })
            .collect();
        let cents = |l: &RawLine| Money::parse(l.amount.as_deref().unwrap()).unwrap().cents() as u64;
        let entries: Vec<EntryToWrite> = if ctx {
            vec![entry(dated.iter().map(cents).sum(), dated.iter().map(ded_segment).collect())]
        } else {
            dated.iter().map(|l| entry(cents(l), vec![ded_segment(l)])).collect()
        };
        let file = write_file(if ctx { "CTX" } else { "CCD" }, "ACME", "431234567", &entries);
        let read_back = read(RemittanceFormat::Nacha, &file, NONE).unwrap();
        prop_assert_eq!(read_back.len(), dated.len());
        for (got, sent) in read_back.iter().zip(&dated) {
            prop_assert_eq!(&got.case_number, &sent.case_number.clone().filter(|c| !c.is_empty()));
            prop_assert_eq!(&got.employee_ssn, &sent.employee_ssn);
            prop_assert_eq!(&got.pay_date, &sent.pay_date);
            prop_assert_eq!(&got.amount, &sent.amount);
            prop_assert_eq!(&got.fips_code, &sent.fips_code);
            prop_assert_eq!(&got.employment_terminated, &sent.employment_terminated.clone().filter(|t| !t.is_empty()));
            prop_assert_eq!(got.line, sent.line);
            prop_assert!(got.format_problems.is_empty());
        }
    }

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        for format in [RemittanceFormat::Csv, RemittanceFormat::Xml, RemittanceFormat::Nacha] {
            let _ = read(format, &bytes, DeclaredTotals { line_count: Some(1), total: None });
        }
    }

    #[test]
    fn no_parser_panics_on_a_mutated_valid_file(
        lines in proptest::collection::vec(arbitrary_line(), 1..5),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let lines = numbered(lines);
        let cents = |l: &RawLine| Money::parse(l.amount.as_deref().unwrap()).unwrap().cents() as u64;
        let nacha = write_file("CCD", "ACME", "431234567", &lines.iter().map(|l| entry(cents(l), vec![ded_segment(l)])).collect::<Vec<_>>());
        for (format, mut file) in [
            (RemittanceFormat::Csv, write_csv(&lines)),
            (RemittanceFormat::Xml, write_xml("B-1", &lines)),
            (RemittanceFormat::Nacha, nacha),
        ] {
            let at = position.index(file.len());
            file[at] = byte;
            let _ = read(format, &file, NONE);
        }
    }
}
