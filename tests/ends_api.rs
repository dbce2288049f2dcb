//! Order ends through gRPC (`order-lifecycle.md`): an end stops accrual after its month; a
//! back-dated end after the money moves exactly the current support of later months into
//! correction pools that the next run applies again; a reversal afterwards still takes back
//! exactly its amount; explanations add up; a registry import that moves `end_date` earlier
//! is corrected the same way.

mod common;

use std::collections::BTreeMap;

use common::{distribute, Backend, TestApp, TestClock};
use gateway::grpc::proto;
use proto::collection_service_client::CollectionServiceClient;
use proto::explain_service_client::ExplainServiceClient;
use proto::order_service_client::OrderServiceClient;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

/// OB-1's orders A (300.00 a month, 50.00 opening arrears) and B (200.00, 100.00), from
/// September 2026; OB-2's order C (150.00), with its `end_date` as given.
fn registry(c_end: &str) -> String {
    format!(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,end_date\n\
         OB-1,123-45-6789,Smith,John,12345678,A,300.00,2026-09,50.00,\n\
         OB-1,123-45-6789,Smith,John,12345679,B,200.00,2026-09,100.00,\n\
         OB-2,223-45-6789,Doe,Jane,22345678,C,150.00,2026-09,0.00,{c_end}\n"
    )
}

async fn import(app: &TestApp, registry: &str) -> proto::ImportRegistryResponse {
    let chunks = gateway::grpc::client::registry_upload(registry.as_bytes(), 1 << 16);
    let response = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert!(response.applied, "{response:?}");
    response
}

async fn collect(app: &TestApp, case: &str, amount: &str, date: &str) -> i64 {
    let request = proto::AddCollectionRequest { case_number: case.into(), amount: amount.into(), effective_date: date.into() };
    CollectionServiceClient::new(app.channel.clone()).add_collection(request).await.unwrap().into_inner().collection.unwrap().collection_id
}

fn end(order: &str, reason: proto::EndReason, date: &str) -> proto::RecordOrderEndRequest {
    proto::RecordOrderEndRequest { order_id: order.into(), reason: reason as i32, end_date: date.into() }
}

fn cents(text: &str) -> i64 {
    let (sign, digits) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
    sign * gateway::domain::Money::parse(digits).unwrap_or_else(|e| panic!("{text}: {e}")).cents()
}

/// The allocation export as (order, bucket, month) → cents, summed, and each pool's total
/// (an obligor's pool is known by its effective date in these tests).
struct Ledger {
    rows: BTreeMap<(String, String, String), i64>,
    by_pool: BTreeMap<(String, String), i64>,
}

async fn ledger(app: &TestApp) -> Ledger {
    let csv = common::export(&app.channel, common::Export::Allocations).await;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    let (order, bucket, month, amount) = (column("order_id"), column("bucket"), column("month"), column("amount"));
    let (obligor, date) = (column("obligor_id"), column("effective_date"));
    let mut ledger = Ledger { rows: BTreeMap::new(), by_pool: BTreeMap::new() };
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        *ledger.rows.entry((cells[order].into(), cells[bucket].into(), cells[month].into())).or_default() += cents(cells[amount]);
        *ledger.by_pool.entry((cells[obligor].into(), cells[date].into())).or_default() += cents(cells[amount]);
    }
    ledger
}

impl Ledger {
    fn held(&self, order: &str, bucket: &str, month: &str) -> i64 {
        self.rows.get(&(order.to_owned(), bucket.to_owned(), month.to_owned())).copied().unwrap_or(0)
    }
}

async fn a_back_dated_end_moves_exactly_the_later_current_support(backend: Backend) {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(backend, clock.clone()).await;
    import(&app, &registry("")).await;

    // Payroll: September pays both orders in full; October, like November's online payment,
    // prorates current support 240.00 to A and 160.00 to B. (The file is late: accepted.)
    let payroll = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                   43-1234567,12345678,123-45-6789,Smith,2026-09-15,500.00\n\
                   43-1234567,12345679,123-45-6789,Smith,2026-10-15,400.00\n";
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "PAY-1".into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, payroll.as_bytes(), 1 << 16);
    let vendor = app.vendor("acme-payroll").await;
    let ack = RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(upload)).await.unwrap().into_inner();
    let ack = ack.acknowledgment.unwrap();
    assert_eq!((ack.total_amount.as_str(), ack.applied), ("900.00", 2));
    // Collections are numbered as recorded: the file's lines in order, then the payment's.
    let october = 2;
    let payer_id = app.confirmed_payer().await;
    let mut payments = PaymentServiceClient::new(app.payment_site.clone());
    let payment = proto::SubmitPaymentRequest {
        payer_id,
        case_number: "12345678".into(),
        amount: "400.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: "november".into(),
    };
    let receipt = payments.submit_payment(payment).await.unwrap().into_inner().receipt.unwrap();
    let run = distribute(&app.channel).await;
    assert_eq!((run.total.as_str(), run.corrections.as_str()), ("1300.00", "0.00"));
    let before = ledger(&app).await;
    assert_eq!((before.held("A", "CURRENT", "2026-10"), before.held("A", "CURRENT", "2026-11")), (240_00, 240_00));

    // The child married on 20 September, and the agency hears of it in November.
    let mut orders = OrderServiceClient::new(app.channel.clone());
    let recorded = orders.record_order_end(end("A", proto::EndReason::ChildMarried, "2026-09-20")).await.unwrap().into_inner().end.unwrap();
    assert_eq!((recorded.corrected.as_str(), recorded.corrected_pools, recorded.recorded_by.as_str()), ("480.00", 2, "back-office"));
    assert_eq!(recorded.reason(), proto::EndReason::ChildMarried);

    let after = ledger(&app).await;
    assert_eq!((after.held("A", "CURRENT", "2026-10"), after.held("A", "CURRENT", "2026-11")), (0, 0), "later months hold nothing");
    assert_eq!(after.held("A", "CURRENT", "2026-09"), 300_00, "the end month is owed in full");
    assert_eq!(after.held("", "CORRECTION", ""), 480_00, "the correction pools wait for the next run");
    let totals = common::report(&app.channel, proto::ReportKind::Totals, None, None).await;
    assert!(totals.contains("undistributed,480.00"), "correction pools are undistributed money: {totals}");
    assert_eq!(after.by_pool, before.by_pool, "a correction moves money within its pools");

    // The next run applies the correction pools with the balances as they then stand: B's
    // current support still due (40.00 in October and in November), then arrears (A's 50.00
    // included: arrears stay owed after an end), then unapplied credit.
    let run = distribute(&app.channel).await;
    assert_eq!(
        (run.total.as_str(), run.corrections.as_str(), run.current.as_str(), run.arrears.as_str(), run.unapplied.as_str(), run.collections),
        ("0.00", "480.00", "80.00", "150.00", "250.00", 0)
    );
    let applied = ledger(&app).await;
    assert_eq!(applied.held("", "CORRECTION", ""), 0);
    assert_eq!((applied.held("B", "CURRENT", "2026-10"), applied.held("B", "CURRENT", "2026-11")), (200_00, 200_00));
    assert_eq!((applied.held("A", "ARREARS", ""), applied.held("B", "ARREARS", "")), (50_00, 100_00));
    assert_eq!(applied.by_pool, before.by_pool, "every pool still adds up to its amount");
    assert!(distribute(&app.channel).await.run_id.is_none(), "nothing is left pending");

    // The October collection's explanation: its rows with the rule's step, the balances
    // around it, and everything that later moved its money; every figure adds up.
    let mut explain = ExplainServiceClient::new(app.channel.clone());
    let explained = explain.explain_collection(proto::ExplainCollectionRequest { collection_id: october }).await.unwrap().into_inner();
    let pool = explained.pool.unwrap();
    let steps: Vec<(String, proto::RuleStep, String)> =
        pool.rows.iter().map(|r| { let e = r.entry.as_ref().unwrap(); (e.order_id.clone(), e.step(), e.amount.clone()) }).collect();
    assert_eq!(
        steps,
        [("A".to_owned(), proto::RuleStep::CurrentProrated, "240.00".to_owned()), ("B".to_owned(), proto::RuleStep::CurrentProrated, "160.00".to_owned())]
    );
    assert_eq!(pool.rows.iter().map(|r| cents(&r.share)).sum::<i64>(), 400_00, "the shares add up to the collection");
    // Balances are computed with the orders' terms as they stand now: A's October is no
    // longer due; B's was 200.00 before this pool and 40.00 after it.
    let b = pool.balances.iter().find(|b| b.order_id == "B").unwrap();
    assert_eq!((b.current_due_before.as_str(), b.arrears_before.as_str()), ("200.00", "100.00"));
    assert_eq!((b.current_due_after.as_str(), b.arrears_after.as_str()), ("40.00", "100.00"));
    let a = pool.balances.iter().find(|b| b.order_id == "A").unwrap();
    assert_eq!((a.current_due_before.as_str(), a.current_due_after.as_str()), ("0.00", "0.00"));
    let kinds: Vec<proto::EntryKind> = pool.later_entries.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == proto::EntryKind::Correction).count(), 2, "the reversed row and the correction pool");
    assert!(kinds.contains(&proto::EntryKind::CorrectionApplied));
    assert!(pool.later_entries.iter().filter(|e| e.kind() == proto::EntryKind::Correction).all(|e| e.end_id == recorded.end_id));
    let later: i64 = pool.later_entries.iter().map(|e| cents(&e.amount)).sum();
    assert_eq!((later, pool.holds.as_str()), (0, "400.00"));

    // The bank returns November's payment after the correction: the reversal takes back
    // exactly 400.00 from what the pool's rows hold now (the re-applied rows included).
    let returned = PaymentServiceClient::new(app.channel.clone())
        .record_return(proto::RecordReturnRequest { payment_id: receipt.payment_id, return_code: "R01".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(returned.entries.iter().map(|e| cents(&e.amount)).sum::<i64>(), -400_00);
    let reversed = ledger(&app).await;
    assert_eq!(reversed.held("B", "CURRENT", "2026-11"), 0);
    let payment_collection = 3;
    let explained = explain.explain_collection(proto::ExplainCollectionRequest { collection_id: payment_collection }).await.unwrap().into_inner();
    assert_eq!((explained.reversed.as_str(), explained.pool.unwrap().holds.as_str()), ("400.00", "0.00"));

    // A's statement: September accrues, later months do not; the end is on it; it adds up.
    let statement = explain
        .explain_order(proto::ExplainOrderRequest { order_id: "A".into(), from_date: "2026-09-01".into(), to_date: "2026-12-31".into() })
        .await
        .unwrap()
        .into_inner();
    let accruals: Vec<&str> =
        statement.lines.iter().filter(|l| l.kind() == proto::StatementLineKind::Accrual).map(|l| l.month.as_str()).collect();
    assert_eq!(accruals, ["2026-09"]);
    assert!(statement.lines.iter().any(|l| l.kind() == proto::StatementLineKind::EndRecorded));
    assert_eq!((statement.opening.as_str(), statement.accrued.as_str(), statement.end_date.as_str()), ("50.00", "300.00", "2026-09-20"));
    assert_eq!(cents(&statement.opening) + cents(&statement.accrued) - cents(&statement.allocated), cents(&statement.closing));
    assert_eq!(statement.closing, "0.00", "A's September and its arrears are paid");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_back_dated_end_moves_exactly_the_later_current_support_on_sqlite() {
    a_back_dated_end_moves_exactly_the_later_current_support(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_back_dated_end_moves_exactly_the_later_current_support_on_postgres() {
    a_back_dated_end_moves_exactly_the_later_current_support(Backend::Postgres).await;
}

#[tokio::test]
async fn an_order_ended_mid_month_accrues_that_month_and_none_later_until_the_end_is_withdrawn() {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock).await;
    import(&app, &registry("")).await;
    let mut orders = OrderServiceClient::new(app.channel.clone());
    let mut explain = ExplainServiceClient::new(app.channel.clone());
    let accruals = |statement: &proto::ExplainOrderResponse| -> Vec<String> {
        statement.lines.iter().filter(|l| l.kind() == proto::StatementLineKind::Accrual).map(|l| l.month.clone()).collect()
    };
    let statement_of_b = proto::ExplainOrderRequest { order_id: "B".into(), from_date: "2026-09-01".into(), to_date: "2027-01-31".into() };

    let recorded = orders.record_order_end(end("B", proto::EndReason::Military, "2026-12-10")).await.unwrap().into_inner().end.unwrap();
    assert_eq!((recorded.corrected.as_str(), recorded.corrected_pools), ("0.00", 0), "no money was paid past it");
    let statement = explain.explain_order(statement_of_b.clone()).await.unwrap().into_inner();
    assert_eq!(accruals(&statement), ["2026-09", "2026-10", "2026-11", "2026-12"]);
    assert_eq!(statement.closing, "900.00", "100.00 opening arrears and four months of 200.00");

    // Once only: a second end is refused until the first is withdrawn; so is an end before
    // the order's start, a reason the registry alone sets, and an unknown order.
    let again = orders.record_order_end(end("B", proto::EndReason::ChildDied, "2026-11-01")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(again.get_error_details().error_info().unwrap().reason, "ORDER_ALREADY_ENDED");
    let early = orders.record_order_end(end("A", proto::EndReason::ChildDied, "2026-08-31")).await.unwrap_err();
    assert_eq!(early.code(), Code::InvalidArgument, "{early:?}");
    let registry_only = orders.record_order_end(end("A", proto::EndReason::RegistryImport, "2026-10-01")).await.unwrap_err();
    assert_eq!(registry_only.get_error_details().bad_request().unwrap().field_violations[0].field, "reason");
    assert_eq!(orders.record_order_end(end("NOPE", proto::EndReason::Age18, "2026-10-01")).await.unwrap_err().code(), Code::NotFound);

    let withdrawn = orders.withdraw_order_end(proto::WithdrawOrderEndRequest { order_id: "B".into() }).await.unwrap().into_inner().end.unwrap();
    assert_eq!((withdrawn.end_id, withdrawn.withdrawn_by.as_str()), (recorded.end_id, "back-office"));
    assert!(withdrawn.withdraw_time.is_some());
    let statement = explain.explain_order(statement_of_b).await.unwrap().into_inner();
    assert_eq!(accruals(&statement), ["2026-09", "2026-10", "2026-11", "2026-12", "2027-01"], "the later months are due again");
    assert!(statement.lines.iter().any(|l| l.kind() == proto::StatementLineKind::EndWithdrawn));
    let nothing = orders.withdraw_order_end(proto::WithdrawOrderEndRequest { order_id: "B".into() }).await.unwrap_err();
    assert_eq!(nothing.get_error_details().error_info().unwrap().reason, "NO_END_TO_WITHDRAW");

    // Every end, withdrawal and refusal is in the audit trail.
    let audit = common::export(&app.channel, common::Export::Audit).await;
    assert_eq!(audit.lines().filter(|l| l.contains(",RecordOrderEnd,")).count(), 5, "{audit}");
    assert_eq!(audit.lines().filter(|l| l.contains(",WithdrawOrderEnd,")).count(), 2, "{audit}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_registry_import_that_moves_the_end_earlier_is_corrected_like_an_end() {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock).await;
    import(&app, &registry("")).await;
    for date in ["2026-09-15", "2026-10-15", "2026-11-13"] {
        collect(&app, "22345678", "150.00", date).await;
    }
    distribute(&app.channel).await;

    // The registry learns C ended on 30 September: October and November are moved.
    let response = import(&app, &registry("2026-09-30")).await;
    assert_eq!(response.updated, 1, "{response:?}");
    let moved = ledger(&app).await;
    assert_eq!((moved.held("C", "CURRENT", "2026-10"), moved.held("C", "CURRENT", "2026-11"), moved.held("", "CORRECTION", "")), (0, 0, 300_00));
    // The same registry again changes nothing and moves nothing.
    assert_eq!(import(&app, &registry("2026-09-30")).await.unchanged, 3);
    assert_eq!(ledger(&app).await.held("", "CORRECTION", ""), 300_00);
    // Nothing else is owed on C: the run keeps the money as OB-2's credit.
    let run = distribute(&app.channel).await;
    assert_eq!((run.corrections.as_str(), run.unapplied.as_str()), ("300.00", "300.00"));

    let statement = ExplainServiceClient::new(app.channel.clone())
        .explain_order(proto::ExplainOrderRequest { order_id: "C".into(), to_date: "2026-11-30".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let ends: Vec<proto::OrderEnd> = statement.lines.iter().filter_map(|l| l.end.clone()).collect();
    assert_eq!(ends.len(), 1);
    assert_eq!((ends[0].reason(), ends[0].end_date.as_str()), (proto::EndReason::RegistryImport, "2026-09-30"));
    assert_eq!(statement.closing, "0.00");

    // The registry drops the end: the months are due again, the money stays where it went.
    import(&app, &registry("")).await;
    let statement = ExplainServiceClient::new(app.channel.clone())
        .explain_order(proto::ExplainOrderRequest { order_id: "C".into(), to_date: "2026-11-30".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    // Owed through November: three months of 150.00, less September's payment; the 300.00
    // the correction moved stays OB-2's credit.
    assert_eq!((statement.end_date.as_str(), statement.closing.as_str()), ("", "300.00"));
    assert!(statement.lines.iter().any(|l| l.kind() == proto::StatementLineKind::EndWithdrawn));
    assert_eq!(ledger(&app).await.held("", "UNAPPLIED", ""), 300_00);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
