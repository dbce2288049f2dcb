//! `gateway withholding calc`: one employee's withholding as a table, or a whole payroll CSV
//! computed by the server employee by employee (`docs/withholding.md` lists the columns in
//! and out), optionally written as remittance lines ready for `gateway remit submit`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;

use super::client::{status_error, GatewayChannel};
use super::output::print;
use crate::app::spreadsheet_safe;
use crate::grpc::proto::withholding_service_client::WithholdingServiceClient;
use crate::grpc::proto::{self, calculate_payroll_withholding_response::Result as Answer};

#[derive(Debug, Args)]
pub struct CalcArgs {
    /// A payroll CSV, one employee per row (columns in docs/withholding.md), instead of the
    /// one-employee options below.
    #[arg(
        long,
        conflicts_with_all = [
            "frequency", "pay_date", "disposable_earnings", "employee_ssn", "case_numbers", "other_orders",
            "medical_premium", "other_family", "no_other_family",
        ]
    )]
    pub file: Option<PathBuf>,
    /// With --file: write the results to this CSV (default: standard output).
    #[arg(long, requires = "file")]
    pub out: Option<PathBuf>,
    /// With --file: write remittance lines in the gateway's CSV format (one per order with
    /// money withheld) instead of the results, ready for `gateway remit submit`.
    #[arg(long, requires = "file")]
    pub as_remittance: bool,
    /// How often the employee is paid.
    #[arg(long, value_enum, required_unless_present = "file")]
    pub frequency: Option<Frequency>,
    /// The pay date, YYYY-MM-DD.
    #[arg(long, required_unless_present = "file")]
    pub pay_date: Option<String>,
    /// Disposable earnings of the pay period, e.g. 800.00.
    #[arg(long, required_unless_present = "file")]
    pub disposable_earnings: Option<String>,
    /// The employee supports a spouse or child not covered by these orders (50 % limit).
    /// Without this flag or --no-other-family it is taken as yes: the lower limit.
    #[arg(long, conflicts_with = "no_other_family")]
    pub other_family: bool,
    /// The employee supports no other family (60 % limit).
    #[arg(long)]
    pub no_other_family: bool,
    /// The employee's share of the health premium for the period, e.g. 75.00.
    #[arg(long)]
    pub medical_premium: Option<String>,
    /// The employee's SSN: checked against each case's obligor, never stored or printed.
    #[arg(long, required_unless_present = "file")]
    pub employee_ssn: Option<String>,
    /// A case number of the employee's orders in the registry (repeat for several).
    #[arg(long = "case-number")]
    pub case_numbers: Vec<String>,
    /// An order the registry does not hold: REFERENCE:CURRENT_MONTHLY[:ARREARS_MONTHLY[:old]]
    /// (`old` when it has arrears more than 12 weeks old). Repeat for several.
    #[arg(long = "other-order")]
    pub other_orders: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Frequency {
    Weekly,
    Biweekly,
    Semimonthly,
    Monthly,
}

fn frequency(frequency: Frequency) -> proto::PayFrequency {
    match frequency {
        Frequency::Weekly => proto::PayFrequency::Weekly,
        Frequency::Biweekly => proto::PayFrequency::Biweekly,
        Frequency::Semimonthly => proto::PayFrequency::Semimonthly,
        Frequency::Monthly => proto::PayFrequency::Monthly,
    }
}

pub async fn calc(channel: GatewayChannel, json: bool, args: CalcArgs) -> anyhow::Result<ExitCode> {
    match args.file.clone() {
        Some(file) => payroll(channel, &file, args.out.as_deref(), args.as_remittance).await,
        None => one_employee(channel, json, args).await,
    }
}

fn other_order(text: &str) -> anyhow::Result<proto::ExternalOrder> {
    let parts: Vec<&str> = text.split(':').collect();
    let old = match parts.get(3) {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("old") => true,
        Some(_) => anyhow::bail!("an other order's fourth part is `old` or nothing"),
    };
    if parts.len() < 2 || parts.len() > 4 {
        anyhow::bail!("an other order is REFERENCE:CURRENT_MONTHLY[:ARREARS_MONTHLY[:old]]");
    }
    Ok(proto::ExternalOrder {
        order_reference: parts[0].to_owned(),
        current_support_monthly: parts[1].to_owned(),
        arrears_payment_monthly: parts.get(2).map(|s| s.to_string()).unwrap_or_default(),
        old_arrears: old,
    })
}

async fn one_employee(channel: GatewayChannel, json: bool, args: CalcArgs) -> anyhow::Result<ExitCode> {
    let supports_other_family = match (args.other_family, args.no_other_family) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let period = proto::EmployeePayPeriod {
        frequency: args.frequency.map(frequency).unwrap_or_default() as i32,
        pay_date: args.pay_date.unwrap_or_default(),
        disposable_earnings: args.disposable_earnings.unwrap_or_default(),
        supports_other_family,
        medical_premium: args.medical_premium.unwrap_or_default(),
        employee_ssn: args.employee_ssn.unwrap_or_default(),
        case_numbers: args.case_numbers,
        external_orders: args.other_orders.iter().map(|o| other_order(o)).collect::<anyhow::Result<_>>()?,
    };
    let frequency_name = args.frequency.map(|f| format!("{f:?}").to_lowercase()).unwrap_or_default();
    let heading = format!("Pay date {} ({frequency_name}), disposable earnings {}", period.pay_date, period.disposable_earnings);
    let request = proto::CalculateWithholdingRequest { pay_period: Some(period) };
    let response = WithholdingServiceClient::new(channel).calculate_withholding(request).await.map_err(status_error)?.into_inner();
    let text = match &response.withholding {
        Some(withholding) => table(&heading, withholding),
        None => "The server answered without a withholding.\n".to_owned(),
    };
    print(json, &response, text)?;
    Ok(ExitCode::SUCCESS)
}

/// One employee's answer as people read it: the limits, a row per order, the premium, the
/// total and the steps.
pub fn table(heading: &str, w: &proto::Withholding) -> String {
    let mut text = format!("{heading}\n");
    if let Some(limits) = &w.limits {
        let high = if limits.high_percent != limits.base_percent {
            format!("; {} % = {} for arrears more than 12 weeks old", limits.high_percent, limits.cap_high)
        } else {
            String::new()
        };
        let _ = writeln!(text, "Limit: {} % = {}{high}", limits.base_percent, limits.cap_base);
    }
    let _ = writeln!(
        text,
        "\n{:<10} {:<14} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "case", "order", "current due", "withheld", "not withheld", "arrears due", "withheld", "not withheld"
    );
    for o in &w.orders {
        let case = if o.case_number.is_empty() { "(other)" } else { o.case_number.as_str() };
        let old = if o.old_arrears { " *" } else { "" };
        let _ = writeln!(
            text,
            "{case:<10} {:<14} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}{old}",
            o.order_id,
            o.current_support_due,
            o.current_support_withheld,
            o.current_support_not_withheld,
            o.arrears_due,
            o.arrears_withheld,
            o.arrears_not_withheld
        );
    }
    if w.orders.iter().any(|o| o.old_arrears) {
        text.push_str("  * arrears more than 12 weeks old\n");
    }
    if w.notify_plan_administrator {
        let _ = writeln!(
            text,
            "\nMedical premium {} NOT withheld: it does not fit within the limit. Tell the health plan's administrator.",
            w.medical_premium_not_withheld
        );
    } else if w.medical_premium_withheld != "0.00" {
        let _ = writeln!(text, "\nMedical premium withheld: {} (paid to the health plan, not remitted to the agency).", w.medical_premium_withheld);
    }
    let _ = writeln!(text, "\nTotal to withhold: {}. Remit to the agency by {}.", w.total_withheld, w.remit_by);
    text.push_str("\nHow it was decided:\n");
    for step in &w.trace {
        let _ = writeln!(text, "  - {step}");
    }
    text
}

// ---- A payroll file ----

/// The exit code of a payroll run in which some employees could not be computed (the others
/// were): distinct from 1, a run that failed as a whole.
pub const SOME_EMPLOYEES_FAILED: u8 = 4;

/// The payroll file's columns: (name, required).
const PAYROLL_COLUMNS: [(&str, bool); 12] = [
    ("employee_id", true),
    ("employee_ssn", true),
    ("employee_last_name", false),
    ("employee_first_name", false),
    ("employer_fein", false),
    ("case_numbers", true),
    ("pay_frequency", true),
    ("pay_date", true),
    ("disposable_earnings", true),
    ("supports_other_family", false),
    ("medical_premium", false),
    ("other_orders", false),
];

/// The results file's columns.
const RESULT_COLUMNS: [&str; 15] = [
    "employee_id",
    "case_number",
    "order_id",
    "current_support_due",
    "current_support_withheld",
    "current_support_not_withheld",
    "arrears_due",
    "arrears_withheld",
    "arrears_not_withheld",
    "order_withheld",
    "medical_premium_withheld",
    "medical_premium_not_withheld",
    "employee_total_withheld",
    "remit_by",
    "problem",
];

/// The remittance columns written with `--as-remittance` (the gateway's own CSV format).
const REMITTANCE_COLUMNS: [&str; 8] =
    ["employer_fein", "case_number", "employee_ssn", "employee_last_name", "employee_first_name", "employee_id", "pay_date", "amount"];

/// What the results need of a row besides the server's answer.
struct Employee {
    line: u64,
    id: String,
    ssn: String,
    last_name: String,
    first_name: String,
    employer_fein: String,
    pay_date: String,
}

/// A row read: sent to the server, or refused here with its problem.
enum Pending {
    Sent(Employee),
    Refused(Employee, String),
}

/// The column positions of a payroll file's header.
fn payroll_header(header: &csv::StringRecord) -> anyhow::Result<HashMap<&'static str, usize>> {
    let mut positions = HashMap::new();
    for (index, name) in header.iter().enumerate() {
        let name = name.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        let Some((column, _)) = PAYROLL_COLUMNS.iter().find(|(c, _)| *c == name) else {
            // The name is not repeated: a file without a header row has an SSN here.
            let known: Vec<&str> = PAYROLL_COLUMNS.iter().map(|(c, _)| *c).collect();
            anyhow::bail!("column {} of the payroll file's header is not one of: {}", index + 1, known.join(", "));
        };
        if positions.insert(*column, index).is_some() {
            anyhow::bail!("column `{column}` appears twice in the payroll file");
        }
    }
    if let Some((missing, _)) = PAYROLL_COLUMNS.iter().find(|(c, required)| *required && !positions.contains_key(c)) {
        anyhow::bail!("the payroll file has no `{missing}` column");
    }
    Ok(positions)
}

/// One payroll row as the server's request, or the reason it cannot be sent.
fn payroll_row(
    line: u64,
    record: &csv::StringRecord,
    columns: &HashMap<&'static str, usize>,
    as_remittance: bool,
) -> (Employee, Result<proto::CalculatePayrollWithholdingRequest, String>) {
    let field = |name: &str| columns.get(name).and_then(|&i| record.get(i)).map(str::trim).unwrap_or("").to_owned();
    let employee = Employee {
        line,
        id: field("employee_id"),
        ssn: field("employee_ssn"),
        last_name: field("employee_last_name"),
        first_name: field("employee_first_name"),
        employer_fein: field("employer_fein"),
        pay_date: field("pay_date"),
    };
    if record.len() != columns.len() {
        return (employee, Err(format!("the row has {} fields but the header has {}", record.len(), columns.len())));
    }
    let frequency = match field("pay_frequency").to_ascii_lowercase().as_str() {
        "weekly" => proto::PayFrequency::Weekly,
        "biweekly" => proto::PayFrequency::Biweekly,
        "semimonthly" => proto::PayFrequency::Semimonthly,
        "monthly" => proto::PayFrequency::Monthly,
        _ => return (employee, Err("pay_frequency is weekly, biweekly, semimonthly or monthly".into())),
    };
    let supports_other_family = match field("supports_other_family").to_ascii_uppercase().as_str() {
        "" => None,
        "Y" => Some(true),
        "N" => Some(false),
        _ => return (employee, Err("supports_other_family is Y, N or empty (taken as Y)".into())),
    };
    if as_remittance && (employee.employer_fein.is_empty() || employee.last_name.is_empty()) {
        return (employee, Err("a remittance line needs employer_fein and employee_last_name".into()));
    }
    let case_numbers =
        field("case_numbers").split([';', ' ', '|']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect();
    let external_orders = match field("other_orders").split(';').map(str::trim).filter(|o| !o.is_empty()).map(other_order).collect() {
        Ok(orders) => orders,
        Err(error) => return (employee, Err(format!("other_orders: {error}"))),
    };
    let request = proto::CalculatePayrollWithholdingRequest {
        employee_reference: employee.id.clone(),
        pay_period: Some(proto::EmployeePayPeriod {
            frequency: frequency as i32,
            pay_date: employee.pay_date.clone(),
            disposable_earnings: field("disposable_earnings"),
            supports_other_family,
            medical_premium: field("medical_premium"),
            employee_ssn: employee.ssn.clone(),
            case_numbers,
            external_orders,
        }),
    };
    (employee, Ok(request))
}

/// Reads the payroll file on a blocking thread, a row at a time.
fn read_payroll(path: PathBuf, as_remittance: bool, rows: mpsc::Sender<(Employee, Result<proto::CalculatePayrollWithholdingRequest, String>)>) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let columns = payroll_header(reader.headers().context("the payroll file's header row is not readable UTF-8 CSV")?)?;
    // Rows are read as bytes: one that is not UTF-8 (a Latin-1 name) is that row's problem.
    let mut bytes = csv::ByteRecord::new();
    while reader.read_byte_record(&mut bytes).with_context(|| format!("{} is not a readable CSV file", path.display()))? {
        let line = bytes.position().map_or(0, |p| p.line());
        let row = match csv::StringRecord::from_byte_record(bytes.clone()) {
            Ok(record) if record.iter().all(|f| f.trim().is_empty()) => continue,
            Ok(record) => payroll_row(line, &record, &columns, as_remittance),
            Err(_) => {
                let employee = Employee {
                    line,
                    id: String::from_utf8_lossy(columns.get("employee_id").and_then(|&i| bytes.get(i)).unwrap_or_default()).into_owned(),
                    ssn: String::new(),
                    last_name: String::new(),
                    first_name: String::new(),
                    employer_fein: String::new(),
                    pay_date: String::new(),
                };
                (employee, Err("the row is not UTF-8 text: save the file as UTF-8".to_owned()))
            }
        };
        if rows.blocking_send(row).is_err() {
            break; // The call ended; its error is reported there.
        }
    }
    Ok(())
}

/// Totals of a payroll run, for the summary.
#[derive(Default)]
struct RunTotals {
    computed: u64,
    problems: u64,
    withheld_cents: i64,
}

fn cents(amount: &str) -> i64 {
    crate::domain::Money::parse(amount).map(|m| m.cents()).unwrap_or(0)
}

async fn payroll(channel: GatewayChannel, file: &Path, out: Option<&Path>, as_remittance: bool) -> anyhow::Result<ExitCode> {
    let (row_tx, mut row_rx) = mpsc::channel(1024);
    let path = file.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_payroll(path, as_remittance, row_tx));
    let (request_tx, request_rx) = mpsc::channel::<proto::CalculatePayrollWithholdingRequest>(1024);
    let (pending_tx, mut pending_rx) = mpsc::unbounded_channel::<Pending>();
    // Rows go to the server in file order; the answers come back in the same order.
    let forward = tokio::spawn(async move {
        while let Some((employee, request)) = row_rx.recv().await {
            match request {
                Ok(request) => {
                    if pending_tx.send(Pending::Sent(employee)).is_err() || request_tx.send(request).await.is_err() {
                        break;
                    }
                }
                Err(problem) => {
                    if pending_tx.send(Pending::Refused(employee, problem)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let requests = tokio_stream::wrappers::ReceiverStream::new(request_rx);
    let mut answers =
        WithholdingServiceClient::new(channel).calculate_payroll_withholding(requests).await.map_err(status_error)?.into_inner();

    let sink: Box<dyn Write> = match out.filter(|p| p.as_os_str() != "-") {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(sink));
    writer.write_record(if as_remittance { &REMITTANCE_COLUMNS[..] } else { &RESULT_COLUMNS[..] })?;
    let mut totals = RunTotals::default();
    while let Some(pending) = pending_rx.recv().await {
        let (employee, answer) = match pending {
            Pending::Refused(employee, problem) => (employee, Err(problem)),
            Pending::Sent(employee) => {
                let answer = answers.message().await.map_err(status_error)?.context("the server ended the run before answering every employee")?;
                let result = match answer.result {
                    Some(Answer::Withholding(w)) => Ok(w),
                    Some(Answer::Failure(failure)) => Err(failure.message),
                    None => Err("the server answered without a result".to_owned()),
                };
                (employee, result)
            }
        };
        match answer {
            Ok(w) => {
                totals.computed += 1;
                totals.withheld_cents += cents(&w.total_withheld);
                if as_remittance {
                    write_remittance_lines(&mut writer, &employee, &w)?;
                } else {
                    write_results(&mut writer, &employee, &w)?;
                }
            }
            Err(problem) => {
                totals.problems += 1;
                if as_remittance {
                    eprintln!("line {} (employee {}): {problem}", employee.line, spreadsheet_safe(&employee.id));
                } else {
                    let mut row = vec![String::new(); RESULT_COLUMNS.len()];
                    row[0] = employee.id.clone();
                    row[RESULT_COLUMNS.len() - 1] = format!("line {}: {problem}", employee.line);
                    write_row(&mut writer, &row)?;
                }
            }
        }
    }
    writer.flush()?;
    forward.await.context("the payroll reader stopped")?;
    reader.await.context("the payroll reader stopped")??;
    eprintln!(
        "{} employee(s) computed, {} withheld in all; {} with a problem{}.",
        totals.computed,
        crate::domain::Money::from_cents(totals.withheld_cents),
        totals.problems,
        if totals.problems > 0 && !as_remittance { " (see the problem column)" } else { "" }
    );
    Ok(if totals.problems == 0 { ExitCode::SUCCESS } else { ExitCode::from(SOME_EMPLOYEES_FAILED) })
}

fn write_row(writer: &mut csv::Writer<impl Write>, row: &[String]) -> anyhow::Result<()> {
    writer.write_record(row.iter().map(|cell| spreadsheet_safe(cell).into_owned()))?;
    Ok(())
}

/// One row per order; the employee's premium and total on its first row only, so that a
/// column's sum is the payroll's.
fn write_results(writer: &mut csv::Writer<impl Write>, employee: &Employee, w: &proto::Withholding) -> anyhow::Result<()> {
    for (index, o) in w.orders.iter().enumerate() {
        let first = index == 0;
        let employee_level = |value: &str| if first { value.to_owned() } else { String::new() };
        write_row(
            writer,
            &[
                employee.id.clone(),
                o.case_number.clone(),
                o.order_id.clone(),
                o.current_support_due.clone(),
                o.current_support_withheld.clone(),
                o.current_support_not_withheld.clone(),
                o.arrears_due.clone(),
                o.arrears_withheld.clone(),
                o.arrears_not_withheld.clone(),
                o.withheld.clone(),
                employee_level(&w.medical_premium_withheld),
                employee_level(&w.medical_premium_not_withheld),
                employee_level(&w.total_withheld),
                w.remit_by.clone(),
                String::new(),
            ],
        )?;
    }
    Ok(())
}

/// One remittance line per registry order with money withheld (the premium goes to the
/// health plan, not to the agency). Written as given: this file is read by the gateway, not a
/// spreadsheet, so nothing is escaped.
fn write_remittance_lines(writer: &mut csv::Writer<impl Write>, employee: &Employee, w: &proto::Withholding) -> anyhow::Result<()> {
    for o in w.orders.iter().filter(|o| !o.case_number.is_empty() && cents(&o.withheld) > 0) {
        writer.write_record(
            [
                employee.employer_fein.clone(),
                o.case_number.clone(),
                employee.ssn.clone(),
                employee.last_name.clone(),
                employee.first_name.clone(),
                employee.id.clone(),
                employee.pay_date.clone(),
                o.withheld.clone(),
            ],
        )?;
    }
    Ok(())
}
