//! `gateway withholding calc` as an employer runs it against a server: one employee as a
//! table, a payroll file as results (a bad row stops no other), and the same payroll as
//! remittance lines that `gateway remit submit` accepts.

mod common;

use common::process::{cli, server_with_registry};
use common::TestDb;

const SSN: &str = "123-45-6789";

/// A pay date the server accepts in a remittance too: yesterday (not in the future).
fn yesterday() -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string()
}

#[test]
fn one_employee_is_answered_as_a_table_and_a_wrong_ssn_is_not_found() {
    let db = TestDb::new_blocking();
    let (server, _dir) = server_with_registry(&db);
    let vendor = &server.keys.vendor;
    let (code, out, err) = cli(
        &server,
        vendor,
        &[
            "withholding", "calc", "--frequency", "biweekly", "--pay-date", &yesterday(), "--disposable-earnings", "800.00",
            "--no-other-family", "--employee-ssn", SSN, "--case-number", "12345678", "--case-number", "12345679",
            "--other-order", "KS-1:500.00:100.00:old", "--medical-premium", "75.00",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // 60 % of 800.00 = 480.00; current A 138.46 + B 92.31 + KS-1 230.77 = 461.54 fits;
    // the premium (75.00) does not fit in the 18.46 left; KS-1's old arrears payment (46.15)
    // fits in those 18.46 and the 40.00 band above the 60 %.
    assert!(out.contains("Limit: 60 % = 480.00; 65 % = 520.00"), "{out}");
    for row in ["12345678   A", "12345679   B", "(other)    KS-1"] {
        assert!(out.contains(row), "{row} in:\n{out}");
    }
    assert!(out.contains("Medical premium 75.00 NOT withheld"), "{out}");
    assert!(out.contains("Total to withhold: 507.69."), "{out}");
    assert!(!out.contains(SSN) && !out.contains("123456789"), "the SSN is never printed");

    let (code, out, err) = cli(
        &server,
        vendor,
        &["--json", "withholding", "calc", "--frequency", "weekly", "--pay-date", &yesterday(), "--disposable-earnings", "600",
          "--employee-ssn", "223-45-6789", "--case-number", "12345678"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("not every case named is this employee's"), "{err}");
    assert!(!err.contains("223-45-6789"), "{err}");

    // A back-office key may not ask.
    let (code, _, err) = cli(
        &server,
        &server.keys.back_office,
        &["withholding", "calc", "--frequency", "weekly", "--pay-date", &yesterday(), "--disposable-earnings", "600",
          "--employee-ssn", SSN, "--case-number", "12345678"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("PermissionDenied"), "{err}");
}

fn payroll_file(dir: &std::path::Path) -> std::path::PathBuf {
    let pay_date = yesterday();
    let path = dir.join("payroll.csv");
    let mut bytes = format!(
        "employee_id,employee_ssn,employee_last_name,employee_first_name,employer_fein,case_numbers,pay_frequency,pay_date,disposable_earnings,supports_other_family,medical_premium,other_orders\n\
         E001,{SSN},Smith,John,43-1234567,12345678;12345679,biweekly,{pay_date},800.00,N,,\n\
         E002,223-45-6789,Doe,Jane,43-1234567,22345678,weekly,{pay_date},100.00,,,KS-2:20.00\n\
         E003,223-45-6789,Doe,Jane,43-1234567,22345678,fortnightly,{pay_date},100.00,,,\n\
         E004,223-45-6789,Doe,Jane,43-1234567,12345678,weekly,{pay_date},100.00,,,\n\
         E005,223-45-6789,Doe,Jane,43-1234567,22345678,weekly,{pay_date},-5,,,\n\
         =E006,{SSN},Smith,John,43-1234567,12345678,monthly,{pay_date},2000.00,Y,,\n"
    )
    .into_bytes();
    // A Latin-1 name: that row's problem, not the file's.
    bytes.extend(format!("E007,223-45-6789,Pe*a,Ana,43-1234567,22345678,weekly,{pay_date},100.00,,,\n").into_bytes());
    let at = bytes.iter().rposition(|b| *b == b'*').unwrap();
    bytes[at] = 0xF1;
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_payroll_file_is_computed_row_by_row_and_a_bad_row_stops_no_other() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    let payroll = payroll_file(dir.path());
    let result = dir.path().join("result.csv");
    let (code, out, err) = cli(
        &server,
        &server.keys.vendor,
        &["withholding", "calc", "--file", payroll.to_str().unwrap(), "--out", result.to_str().unwrap()],
    );
    assert_eq!(code, 4, "some rows have problems: {out}{err}");
    assert!(err.contains("3 employee(s) computed") && err.contains("4 with a problem"), "{err}");
    let text = std::fs::read_to_string(&result).unwrap();
    let rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert!(text.starts_with("employee_id,case_number,order_id,"), "{text}");
    assert!(rows.iter().all(|r| r.len() == 15));
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["E001", "E001", "E002", "E002", "E003", "E004", "E005", "'=E006", "E007"], "file order, a row per order");
    // E001: two orders; the employee's total on its first row only.
    assert_eq!(&rows[0][..3], ["E001", "12345678", "A"]);
    assert_eq!((rows[0][4].as_str(), rows[0][12].as_str()), ("138.46", "230.77"));
    assert_eq!((&rows[1][1..3], rows[1][4].as_str(), rows[1][12].as_str()), (&["12345679".to_owned(), "B".into()][..], "92.31", ""));
    // E002: 150.00 a month is 34.62 a week, and its other state's order 4.62: within 50 % of 100.00.
    assert_eq!((rows[2][4].as_str(), rows[2][12].as_str()), ("34.62", "39.24"));
    assert_eq!((rows[3][1].as_str(), rows[3][2].as_str(), rows[3][4].as_str()), ("", "KS-2", "4.62"));
    // E003 to E005 and E007: their problems, in file order.
    assert!(rows[4][14].contains("pay_frequency is weekly, biweekly"), "{:?}", rows[4]);
    assert!(rows[5][14].contains("not every case named is this employee's"), "{:?}", rows[5]);
    assert!(rows[6][14].contains("cannot be negative"), "{:?}", rows[6]);
    assert!(rows[8][14].contains("line 8: the row is not UTF-8"), "{:?}", rows[8]);
    // E006's id would run as a formula in a spreadsheet: neutralised in the results.
    assert_eq!(rows[7][4], "300.00");
    assert!(!text.contains(SSN) && !text.contains("223-45-6789"), "no SSN in the results");
}

#[test]
fn a_payroll_written_as_remittance_lines_is_accepted_by_the_gateway() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    let payroll = payroll_file(dir.path());
    let remittance = dir.path().join("remittance.csv");
    let (code, _, err) = cli(
        &server,
        &server.keys.vendor,
        &["withholding", "calc", "--file", payroll.to_str().unwrap(), "--as-remittance", "--out", remittance.to_str().unwrap()],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("line 4 (employee E003)"), "problems go to standard error: {err}");
    let text = std::fs::read_to_string(&remittance).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "employer_fein,case_number,employee_ssn,employee_last_name,employee_first_name,employee_id,pay_date,amount");
    assert_eq!(lines.len(), 1 + 4, "E001's two orders, E002's and E006's: {text}");
    assert!(lines[1].ends_with(",138.46") && lines[1].starts_with("43-1234567,12345678,123-45-6789,Smith,John,E001,"), "{text}");
    assert!(lines[4].contains(",=E006,"), "the remittance file is written as given: {text}");
    assert!(!text.contains("KS-2"), "another state's order is not remitted to this one");

    let (code, out, err) = cli(
        &server,
        &server.keys.vendor,
        &["remit", "submit", "--format", "csv", "--batch-id", "PAYROLL-1", "--declared-lines", "4", "--declared-total", "565.39",
          remittance.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ACCEPTED: 4 lines, total 565.39."), "{out}");
}
