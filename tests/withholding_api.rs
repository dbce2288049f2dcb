//! The withholding calculator through gRPC: every worked example of `withholding.md` from
//! registry orders (whose terms the gateway derives from its ledger) and from orders given in
//! the request; who may ask (the same NOT_FOUND for an unknown case, another person's case and
//! another employer's order); bad fields; and a payroll run streamed employee by employee.

mod common;

use common::{Authed, Backend, TestApp, TestClock};
use gateway::app::withholding::NOT_FOUND_MESSAGE;
use gateway::domain::access::Role;
use gateway::grpc::proto;
use proto::registry_service_client::RegistryServiceClient;
use proto::withholding_service_client::WithholdingServiceClient;
use tonic::Code;

/// Pay date of every example: a Friday, December 4 2026; the server's today is December 1.
const PAY_DATE: &str = "2026-12-04";

/// One obligor per worked example, with orders whose ledger gives the example's terms on
/// the pay date: "old arrears" are opening arrears; arrears that are only recent are
/// November's unpaid support (an order from 2026-11 with no opening arrears); no arrears at
/// all is an order from 2026-12.
const REGISTRY: &str = "\
obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,employer_fein,arrears_payment_monthly
E1,101-00-0001,One,Ann,10000011,E1-A,400.00,2026-12,0.00,43-1234567,
E2,101-00-0002,Two,Bob,10000021,E2-A,1200.00,2026-11,0.00,,200.00
E2B,101-00-0022,Twob,Bea,10000022,E2B-A,1200.00,2026-11,5000.00,,200.00
E3,101-00-0003,Three,Cy,10000031,E3-A,500.00,2026-12,0.00,,
E3,101-00-0003,Three,Cy,10000032,E3-B,350.00,2026-12,0.00,,
E4,101-00-0004,Four,Di,10000041,E4-A,900.00,2026-11,2000.00,,300.00
E5,101-00-0005,Five,Ed,10000051,E5-A,650.00,2026-11,0.00,,100.00
E6,101-00-0006,Six,Flo,10000061,E6-A,1000.00,2026-11,0.00,,400.00
E6,101-00-0006,Six,Flo,10000062,E6-B,600.00,2026-11,900.00,,500.00
";

async fn setup() -> TestApp {
    let app = TestApp::spawn_with_clock(Backend::Sqlite, TestClock::new("2026-12-01")).await;
    let chunks = gateway::grpc::client::registry_upload(REGISTRY.as_bytes(), 1 << 16);
    let imported = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap();
    assert!(imported.get_ref().applied, "{:?}", imported.get_ref().problems);
    app
}

fn calculator(channel: &Authed) -> WithholdingServiceClient<Authed> {
    WithholdingServiceClient::new(channel.clone())
}

/// A worked example: frequency, DE, other family, premium, then per order the expected
/// (current withheld, arrears withheld).
struct Example {
    name: &'static str,
    ssn: &'static str,
    cases: &'static [&'static str],
    frequency: proto::PayFrequency,
    earnings: &'static str,
    other_family: bool,
    premium: &'static str,
    /// (order id, current withheld, arrears withheld, current not withheld, arrears not withheld)
    expected: &'static [(&'static str, &'static str, &'static str, &'static str, &'static str)],
    total: &'static str,
}

use proto::PayFrequency::{Biweekly, Monthly, Weekly};

const EXAMPLES: [Example; 7] = [
    Example {
        name: "E1",
        ssn: "101-00-0001",
        cases: &["10000011"],
        frequency: Weekly,
        earnings: "600.00",
        other_family: false,
        premium: "",
        expected: &[("E1-A", "92.31", "0.00", "0.00", "0.00")],
        total: "92.31",
    },
    Example {
        name: "E2",
        ssn: "101-00-0002",
        cases: &["10000021"],
        frequency: Biweekly,
        earnings: "800.00",
        other_family: true,
        premium: "",
        // Due 553.85 current and 92.31 arrears: 246.16 not withheld.
        expected: &[("E2-A", "400.00", "0.00", "153.85", "92.31")],
        total: "400.00",
    },
    Example {
        name: "E2b",
        ssn: "101-00-0022",
        cases: &["10000022"],
        frequency: Biweekly,
        earnings: "800.00",
        other_family: true,
        premium: "",
        expected: &[("E2B-A", "400.00", "40.00", "153.85", "52.31")],
        total: "440.00",
    },
    Example {
        name: "E3",
        ssn: "101-00-0003",
        cases: &["10000031", "10000032"],
        frequency: Weekly,
        earnings: "310.00",
        other_family: true,
        premium: "",
        expected: &[("E3-A", "91.17", "0.00", "24.21", "0.00"), ("E3-B", "63.83", "0.00", "16.94", "0.00")],
        total: "155.00",
    },
    Example {
        name: "E4",
        ssn: "101-00-0004",
        cases: &["10000041"],
        frequency: Monthly,
        earnings: "1800.00",
        other_family: false,
        premium: "",
        expected: &[("E4-A", "900.00", "270.00", "0.00", "30.00")],
        total: "1170.00",
    },
    Example {
        name: "E5",
        ssn: "101-00-0005",
        cases: &["10000051"],
        frequency: Biweekly,
        earnings: "700.00",
        other_family: false,
        premium: "75.00",
        // Current due 300.00 fits; the premium fits; arrears 46.15 due, 45.00 withheld.
        expected: &[("E5-A", "300.00", "45.00", "0.00", "1.15")],
        total: "420.00",
    },
    Example {
        name: "E6",
        ssn: "101-00-0006",
        cases: &["10000061", "10000062"],
        frequency: Weekly,
        earnings: "650.00",
        other_family: false,
        premium: "",
        expected: &[("E6-A", "230.77", "20.77", "0.00", "71.54"), ("E6-B", "138.46", "32.50", "0.00", "82.88")],
        total: "422.50",
    },
];

fn period(example: &Example) -> proto::EmployeePayPeriod {
    proto::EmployeePayPeriod {
        frequency: example.frequency as i32,
        pay_date: PAY_DATE.into(),
        disposable_earnings: example.earnings.into(),
        supports_other_family: Some(example.other_family),
        medical_premium: example.premium.into(),
        employee_ssn: example.ssn.into(),
        case_numbers: example.cases.iter().map(|c| c.to_string()).collect(),
        external_orders: Vec::new(),
    }
}

async fn calculate(channel: &Authed, period: proto::EmployeePayPeriod) -> Result<proto::Withholding, tonic::Status> {
    let request = proto::CalculateWithholdingRequest { pay_period: Some(period) };
    calculator(channel).calculate_withholding(request).await.map(|r| r.into_inner().withholding.unwrap())
}

fn amounts(withholding: &proto::Withholding) -> Vec<(String, String, String, String, String)> {
    withholding
        .orders
        .iter()
        .map(|o| {
            let row = (o.order_id.clone(), o.current_support_withheld.clone(), o.arrears_withheld.clone());
            (row.0, row.1, row.2, o.current_support_not_withheld.clone(), o.arrears_not_withheld.clone())
        })
        .collect()
}

fn expected(example: &Example) -> Vec<(String, String, String, String, String)> {
    example.expected.iter().map(|(a, b, c, d, e)| (a.to_string(), b.to_string(), c.to_string(), d.to_string(), e.to_string())).collect()
}

#[tokio::test]
async fn every_worked_example_from_registry_orders() {
    let app = setup().await;
    let vendor = app.vendor("acme-payroll").await;
    for example in &EXAMPLES {
        let answer = calculate(&vendor, period(example)).await.unwrap_or_else(|s| panic!("{}: {s:?}", example.name));
        assert_eq!(amounts(&answer), expected(example), "{}", example.name);
        assert_eq!(answer.total_withheld, example.total, "{}", example.name);
        assert_eq!(answer.remit_by, "2026-12-15", "{}: seven business days after the pay date", example.name);
        assert!(answer.orders.iter().all(|o| o.case_number.len() == 8), "{}", example.name);
    }
    // E5's premium fits; E2b's and E4's limits are 55 % and 65 %.
    let e5 = calculate(&vendor, period(&EXAMPLES[5])).await.unwrap();
    assert_eq!((e5.medical_premium_withheld.as_str(), e5.notify_plan_administrator), ("75.00", false));
    let e4 = calculate(&vendor, period(&EXAMPLES[4])).await.unwrap().limits.unwrap();
    assert_eq!((e4.base_percent, e4.high_percent, e4.cap_high.as_str()), (60, 65, "1170.00"));
    let e2 = calculate(&vendor, period(&EXAMPLES[1])).await.unwrap();
    assert!(!e2.orders[0].old_arrears, "November's support is less than 12 weeks old");
    assert_eq!(e2.limits.unwrap().cap_high, "400.00");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn every_worked_example_from_orders_given_in_the_request() {
    let app = setup().await;
    let vendor = app.vendor("acme-payroll").await;
    // Per order: reference, current monthly, arrears payment, old arrears.
    type Given = &'static [(&'static str, &'static str, &'static str, bool)];
    let given: [(&Example, Given); 7] = [
        (&EXAMPLES[0], &[("E1-A", "400.00", "", false)]),
        (&EXAMPLES[1], &[("E2-A", "1200.00", "200.00", false)]),
        (&EXAMPLES[2], &[("E2B-A", "1200.00", "200.00", true)]),
        (&EXAMPLES[3], &[("E3-A", "500.00", "0", false), ("E3-B", "350.00", "0", false)]),
        (&EXAMPLES[4], &[("E4-A", "900.00", "300.00", true)]),
        (&EXAMPLES[5], &[("E5-A", "650.00", "100.00", false)]),
        (&EXAMPLES[6], &[("E6-A", "1000.00", "400.00", false), ("E6-B", "600.00", "500.00", true)]),
    ];
    for (example, orders) in given {
        let external_orders = orders
            .iter()
            .map(|(reference, current, arrears, old)| proto::ExternalOrder {
                order_reference: reference.to_string(),
                current_support_monthly: current.to_string(),
                arrears_payment_monthly: arrears.to_string(),
                old_arrears: *old,
            })
            .collect();
        // The employee's SSN is still required; no registry case is named.
        let request = proto::EmployeePayPeriod { case_numbers: Vec::new(), external_orders, ..period(example) };
        let answer = calculate(&vendor, request).await.unwrap_or_else(|s| panic!("{}: {s:?}", example.name));
        assert_eq!(amounts(&answer), expected(example), "{}", example.name);
        assert_eq!(answer.total_withheld, example.total, "{}", example.name);
        assert!(answer.orders.iter().all(|o| o.case_number.is_empty()));
    }
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_case_another_persons_case_and_another_employers_order_are_the_same_not_found() {
    let app = setup().await;
    let vendor = app.vendor("acme-payroll").await;
    let acme = app.as_key(Role::Employer, "acme-hr", &["43-1234567"]).await;
    let other_employer = app.as_key(Role::Employer, "zenith-hr", &["12-3456789"]).await;
    let e1 = period(&EXAMPLES[0]);

    // The case's own employer, and a vendor, get the answer.
    assert_eq!(calculate(&acme, e1.clone()).await.unwrap().total_withheld, "92.31");
    assert_eq!(calculate(&vendor, e1.clone()).await.unwrap().total_withheld, "92.31");
    // An order the registry gives no employer is any employer's to compute.
    assert_eq!(calculate(&other_employer, period(&EXAMPLES[1])).await.unwrap().total_withheld, "400.00");

    // Another person's case, another employer's order and an unknown case: one answer.
    let wrong_person = proto::EmployeePayPeriod { employee_ssn: "101-00-0002".into(), ..e1.clone() };
    let unknown = proto::EmployeePayPeriod { case_numbers: vec!["19999999".into()], ..e1.clone() };
    let refusals = [
        ("another person's case", calculate(&vendor, wrong_person).await, "10000011"),
        ("another employer's order", calculate(&other_employer, e1.clone()).await, "10000011"),
        ("an unknown case", calculate(&vendor, unknown).await, "19999999"),
    ];
    for (what, result, _case) in refusals {
        let status = result.expect_err(what);
        assert_eq!(status.code(), Code::NotFound, "{what}");
        assert_eq!(status.message(), NOT_FOUND_MESSAGE, "{what}: the same words, naming no case");
    }
    // One case of the two not the employee's refuses the whole calculation (it would change
    // the other's share), and the answer does not say which.
    let mixed = proto::EmployeePayPeriod { case_numbers: vec!["10000061".into(), "10000011".into()], ..period(&EXAMPLES[6]) };
    assert_eq!(calculate(&vendor, mixed).await.unwrap_err().message(), NOT_FOUND_MESSAGE);

    // Payment-site and back-office keys may not ask at all.
    let status = calculate(&app.channel, e1.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = calculate(&app.payment_site, e1).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Every call is in the audit trail, by action, with its outcome.
    let audit = common::export(&app.channel, common::Export::Audit).await;
    assert!(audit.lines().filter(|l| l.contains("CalculateWithholding") && l.contains("NOT_FOUND")).count() >= 4, "{audit}");
    assert!(audit.lines().any(|l| l.contains("CalculateWithholding") && l.contains("cases:10000011") && l.contains(",OK")), "{audit}");
    assert!(!audit.contains("101-00-0001") && !audit.contains("101000001"), "no SSN in the audit trail");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let mut fields: Vec<String> =
        details.bad_request().map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect()).unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn every_wrong_field_is_reported_at_once_and_never_echoed() {
    let app = setup().await;
    let vendor = app.vendor("acme-payroll").await;
    let wrong = proto::EmployeePayPeriod {
        frequency: proto::PayFrequency::Unspecified as i32,
        pay_date: "2026-02-30".into(),
        disposable_earnings: "-800.00".into(),
        supports_other_family: None,
        medical_premium: "101000001".into(),
        employee_ssn: "000-00-0000".into(),
        case_numbers: vec!["1234".into(), "10000011".into(), "10000011".into()],
        external_orders: vec![proto::ExternalOrder { order_reference: String::new(), current_support_monthly: "12.345".into(), ..Default::default() }],
    };
    let status = calculate(&vendor, wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "pay_period.case_numbers",
            "pay_period.case_numbers",
            "pay_period.disposable_earnings",
            "pay_period.employee_ssn",
            "pay_period.external_orders[0].current_support_monthly",
            "pay_period.external_orders[0].order_reference",
            "pay_period.frequency",
            "pay_period.medical_premium",
            "pay_period.pay_date",
        ]
    );
    assert!(status.message().contains("cannot be negative"), "{}", status.message());
    assert!(!status.message().contains("101000001"), "a value is never repeated: {}", status.message());

    // Earnings too large, a pay date years away, too many orders.
    let mut far = period(&EXAMPLES[0]);
    far.pay_date = "2031-12-05".into();
    far.disposable_earnings = "100000000.00".into();
    far.case_numbers = (0..51).map(|i| format!("2{i:07}")).collect();
    let status = calculate(&vendor, far).await.unwrap_err();
    assert_eq!(violations(&status), ["pay_period.case_numbers", "pay_period.disposable_earnings"]);
    let mut far = period(&EXAMPLES[0]);
    far.pay_date = "2031-12-05".into();
    let status = calculate(&vendor, far).await.unwrap_err();
    assert_eq!(violations(&status), ["pay_period.pay_date"]);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_payroll_run_answers_every_employee_in_order_and_one_problem_stops_no_other() {
    let app = setup().await;
    let acme = app.as_key(Role::Employer, "acme-hr", &["43-1234567"]).await;
    let employee = |reference: &str, pay_period: proto::EmployeePayPeriod| proto::CalculatePayrollWithholdingRequest {
        employee_reference: reference.into(),
        pay_period: Some(pay_period),
    };
    let mut requests = Vec::new();
    for (index, example) in EXAMPLES.iter().enumerate() {
        requests.push(employee(&format!("EMP-{index}"), period(example)));
    }
    requests.push(employee("EMP-BAD", proto::EmployeePayPeriod { disposable_earnings: "lots".into(), ..period(&EXAMPLES[0]) }));
    requests.push(employee("EMP-STRANGER", proto::EmployeePayPeriod { employee_ssn: "101-00-0009".into(), ..period(&EXAMPLES[0]) }));
    requests.push(employee("", period(&EXAMPLES[0])));
    requests.push(employee("EMP-LAST", period(&EXAMPLES[0])));
    let count = requests.len();
    let mut answers = calculator(&acme).calculate_payroll_withholding(futures::stream::iter(requests)).await.unwrap().into_inner();
    let mut received = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        received.push(answer);
    }
    assert_eq!(received.len(), count);
    use proto::calculate_payroll_withholding_response::Result as Answer;
    for (index, example) in EXAMPLES.iter().enumerate() {
        assert_eq!(received[index].employee_reference, format!("EMP-{index}"));
        match &received[index].result {
            Some(Answer::Withholding(w)) => assert_eq!(w.total_withheld, example.total, "{}", example.name),
            other => panic!("{}: {other:?}", example.name),
        }
    }
    let failure = |index: usize| match &received[index].result {
        Some(Answer::Failure(f)) => f.clone(),
        other => panic!("{}: {other:?}", received[index].employee_reference),
    };
    let bad = failure(7);
    assert_eq!(bad.reason(), proto::WithholdingFailureReason::InvalidArgument);
    assert_eq!(bad.field_violations[0].field, "pay_period.disposable_earnings");
    let stranger = failure(8);
    assert_eq!(stranger.reason(), proto::WithholdingFailureReason::NotFound);
    assert_eq!(stranger.message, NOT_FOUND_MESSAGE);
    assert_eq!(failure(9).field_violations[0].field, "employee_reference");
    assert!(matches!(received[10].result, Some(Answer::Withholding(_))), "the run goes on after problems");

    // The run is in the audit trail once, and its employee not found once more.
    let audit = common::export(&app.channel, common::Export::Audit).await;
    let rows: Vec<&str> = audit.lines().filter(|l| l.contains("CalculatePayrollWithholding")).collect();
    assert_eq!(rows.len(), 2, "{audit}");
    assert!(rows[1].contains("payroll:EMP-STRANGER:cases:10000011") && rows[1].ends_with("NOT_FOUND"), "{audit}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn trying_case_numbers_against_an_ssn_soon_spends_the_senders_budget() {
    let app = setup().await;
    let vendor = app.vendor("case-hunter").await;
    // 300 guesses of case numbers with E2's SSN, in one payroll run: one of them is E2's.
    let guesses = (0..300).map(|i| proto::CalculatePayrollWithholdingRequest {
        employee_reference: format!("G{i}"),
        pay_period: Some(proto::EmployeePayPeriod {
            employee_ssn: "101-00-0002".into(),
            case_numbers: vec![format!("1{i:07}")],
            ..period(&EXAMPLES[0])
        }),
    });
    let mut answers = calculator(&vendor).calculate_payroll_withholding(futures::stream::iter(guesses)).await.unwrap().into_inner();
    let (mut not_found, mut found) = (0, Vec::new());
    let ended = loop {
        match answers.message().await {
            Ok(Some(answer)) => match answer.result {
                Some(proto::calculate_payroll_withholding_response::Result::Failure(_)) => not_found += 1,
                _ => found.push(answer.employee_reference),
            },
            Ok(None) => panic!("the run went on past the budget"),
            Err(status) => break status,
        }
    };
    assert_eq!(not_found, 200, "the budget's burst");
    assert_eq!(found, ["G21"], "case 10000021 is E2's");
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    // The same sender's single calls are refused too; another sender is not affected.
    let status = calculate(&vendor, period(&EXAMPLES[1])).await;
    assert!(status.is_ok(), "a found case spends nothing: {status:?}");
    let guess = proto::EmployeePayPeriod { employee_ssn: "101-00-0002".into(), ..period(&EXAMPLES[0]) };
    assert_eq!(calculate(&vendor, guess.clone()).await.unwrap_err().code(), Code::ResourceExhausted);
    let honest = app.vendor("acme-payroll").await;
    assert_eq!(calculate(&honest, guess).await.unwrap_err().code(), Code::NotFound);
    // Every guess is in the audit trail.
    let audit = common::export(&app.channel, common::Export::Audit).await;
    let audited = audit.lines().filter(|l| l.contains("case-hunter") && l.contains("CalculatePayrollWithholding")).count();
    assert!(audited >= 201, "{audited} rows");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
