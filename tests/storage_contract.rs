//! The storage contract: one suite, run on SQLite and on PostgreSQL.
//!
//! Every scenario is a plain async function of the backend; `on_both_backends!` makes a
//! test of it for each. CI runs the PostgreSQL half against a real server: never skipped.

mod common;

use std::sync::Arc;

use chrono::NaiveDate;
use common::{Backend, TestDb, SPEC_REGISTRY};
use gateway::domain::distribution::{plan_obligors, ConservationError, ObligorInput, ObligorPlan};
use gateway::domain::remittance::CaseMatch;
use gateway::domain::{Bucket, CaseNumber, Money, ObligorId, OrderId};
use gateway::formats::registry::read_registry;
use gateway::storage::access::{ApiKeyRecord, KeyCreation};
use gateway::storage::{AuditEntry, CollectionSource, ImportCounts, NewCollection, RegistryEntry, RegistryImport, Store, StoreError};

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Backend::Postgres).await } )*
        }
    };
}

on_both_backends!(
    registry_import_reports_added_updated_and_unchanged,
    registry_import_refuses_moving_a_case_or_an_order_and_writes_nothing,
    distribution_writes_the_spec_example_and_claims_the_collections,
    a_run_with_nothing_pending_changes_nothing,
    a_failed_plan_leaves_nothing_written,
    balances_are_derived_from_the_allocations,
    a_run_spans_several_batches_of_obligors,
    collections_queued_by_files_and_one_at_a_time_are_each_distributed_once,
    a_chunk_too_big_to_load_is_read_again_smaller_and_nothing_is_left_or_split,
    allocations_cannot_be_altered,
    two_replicas_never_distribute_a_collection_twice,
    a_setting_keeps_its_first_value,
    payments_are_recorded_and_returns_reverse_them,
    payments_sent_at_once_are_each_committed_once,
    a_payments_context_is_its_key_payer_and_case_owner_read_at_once,
    trace_numbers_come_round_after_ten_million_payments_and_a_return_names_the_newest,
    a_remittance_file_is_written_whole_or_not_at_all,
    a_file_naming_what_the_registry_does_not_hold_is_refused_whole,
    after_a_failed_batch_nothing_more_of_the_file_is_written_or_kept,
    many_files_open_at_once_each_read_the_registry_and_commit,
    audit_rows_commit_with_their_action_and_never_change,
    api_keys_are_kept_as_hashes_and_revoked_once,
    a_failed_chunk_leaves_whole_chunks_and_the_next_run_finishes_the_rest,
    intake_waits_at_most_one_chunk_behind_a_distribution_run,
    the_orders_of_cases_come_with_their_owner_employer_arrears_payment_and_ledger,
    a_suspense_item_is_worked_once_even_by_clerks_at_the_same_moment,
    termination_notices_are_filtered_and_handled_once,
    review_requests_are_decided_from_the_last_one_and_recorded_with_their_audit_row,
    reports_aggregate_collections_late_lines_and_open_suspense,
    orders_of_grown_children_without_an_end_are_found_by_birth_date,
    an_end_after_the_money_is_corrected_once_and_withdrawn,
    a_registry_end_moved_earlier_is_corrected_and_a_later_one_is_not,
    unapplied_credit_moves_within_its_pools_and_never_below_zero,
    the_registry_generation_rises_with_each_change_and_the_index_holds_the_registry_read_at_it,
);

/// An audit entry for a store call; `action` names it so a test can find its row.
fn audit_of(action: &str) -> AuditEntry {
    AuditEntry {
        at: "2026-11-20T12:00:00Z".to_owned(),
        request_id: "test-request".to_owned(),
        actor: "tester".to_owned(),
        key_id: None,
        role: "back-office".to_owned(),
        action: action.to_owned(),
        object: String::new(),
        outcome: "OK".to_owned(),
    }
}

fn audit() -> AuditEntry {
    audit_of("test")
}

async fn audited_actions(store: &dyn Store) -> Vec<String> {
    store.audit_after(0, 1000).await.unwrap().into_iter().map(|row| row.entry.action).collect()
}

fn entries(csv: &str) -> Vec<RegistryEntry> {
    read_registry(csv.as_bytes(), gateway::formats::FileLimits::STANDARD)
        .expect("a valid registry")
        .into_iter()
        .map(|row| {
            let hmac = test_key().ssn_hmac(&row.ssn);
            RegistryEntry::from_row(row, hmac)
        })
        .collect()
}

fn test_key() -> gateway::app::PiiKey {
    gateway::app::PiiKey::from_hex(&"ab".repeat(32)).unwrap()
}

fn hmac_of(ssn: &str) -> String {
    test_key().ssn_hmac(&gateway::domain::Ssn::parse(ssn).unwrap())
}

fn hmac_bytes_of(ssn: &str) -> gateway::domain::SsnHmac {
    test_key().ssn_hmac_bytes(&gateway::domain::Ssn::parse(ssn).unwrap())
}

/// The obligors the registry's index holds under an SSN.
fn ssn_owners(index: &gateway::domain::registry_index::RegistryIndex, ssn: &str) -> Vec<String> {
    index.obligors_with_ssn(&hmac_bytes_of(ssn)).iter().map(|o| o.as_str().to_owned()).collect()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn money(text: &str) -> Money {
    Money::parse_signed(text).unwrap()
}

/// A CSV file from sender acme, batch `batch`, received on 2026-11-20.
fn file_from_acme(batch: &str) -> gateway::storage::remittance::NewRemittance {
    gateway::storage::remittance::NewRemittance {
        sender: "acme".into(),
        batch_id: batch.into(),
        format: "CSV",
        content_sha256: format!("sha-{batch}"),
        received_at: "t".into(),
        received_on: date("2026-11-20"),
    }
}

async fn collect(store: &dyn Store, case: &str, amount: &str, effective: &str) -> i64 {
    let case_number = CaseNumber::parse(case).unwrap();
    let obligor_id = store.case_owner(&case_number).await.unwrap().expect("a known case");
    store
        .add_collection(
            NewCollection {
                obligor_id,
                case_number: Some(case_number),
                source: CollectionSource::Manual,
                amount: money(amount),
                effective_date: date(effective),
                received_at: "2026-11-20T12:00:00Z".to_owned(),
            },
            &audit(),
        )
        .await
        .unwrap()
        .collection_id
}

async fn seeded(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert!(matches!(store.import_registry(&entries(SPEC_REGISTRY), &audit()).await.unwrap(), RegistryImport::Applied(_)));
    (db, store)
}

async fn all_allocations(store: &dyn Store) -> Vec<(String, Bucket, Option<String>, Money)> {
    store
        .allocations_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.order_id.map(|o| o.to_string()).unwrap_or_default(), a.bucket, a.month.map(|m| m.to_string()), a.amount))
        .collect()
}

async fn registry_import_reports_added_updated_and_unchanged(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let first = store.import_registry(&entries(SPEC_REGISTRY), &audit()).await.unwrap();
    assert_eq!(first, RegistryImport::Applied(ImportCounts { added: 3, updated: 0, unchanged: 0 }));
    let again = store.import_registry(&entries(SPEC_REGISTRY), &audit()).await.unwrap();
    assert_eq!(again, RegistryImport::Applied(ImportCounts { added: 0, updated: 0, unchanged: 3 }));

    // Order B's monthly amount changes, and obligor OB-2's name: both rows are updated.
    let changed = SPEC_REGISTRY.replace("B,200.00", "B,250.00").replace("Doe,Jane", "Doe,Janet");
    let changed = format!("{changed}OB-2,223-45-6789,Doe,Janet,22345678,D,10.00,2026-12,0.00,\n");
    let third = store.import_registry(&entries(&changed), &audit()).await.unwrap();
    assert_eq!(third, RegistryImport::Applied(ImportCounts { added: 1, updated: 2, unchanged: 1 }));

    let owner = store.case_owner(&CaseNumber::parse("22345678").unwrap()).await.unwrap();
    assert_eq!(owner, Some(ObligorId::parse("OB-2").unwrap()));
    assert_eq!(store.case_owner(&CaseNumber::parse("99999999").unwrap()).await.unwrap(), None);
    let orders = store.orders_after(None, 100).await.unwrap();
    let b = orders.iter().find(|o| o.ledger.order().id.as_str() == "B").unwrap();
    assert_eq!(b.ledger.order().monthly_amount, money("250.00"));
    assert_eq!(orders.len(), 4);
}

async fn registry_import_refuses_moving_a_case_or_an_order_and_writes_nothing(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    // Line 2 gives case 12345678 (OB-1's) to OB-9; line 3 gives order C (OB-2's) to OB-9;
    // line 4 is a new order that would be fine on its own.
    let hostile = "\
obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears
OB-9,323-45-6789,Roe,Ann,12345678,Z,1.00,2026-11,0
OB-9,323-45-6789,Roe,Ann,32345678,C,1.00,2026-11,0
OB-9,323-45-6789,Roe,Ann,32345678,Y,1.00,2026-11,0
";
    let RegistryImport::Refused(problems) = store.import_registry(&entries(hostile), &audit()).await.unwrap() else {
        panic!("the file must be refused")
    };
    let found: Vec<_> = problems.iter().map(|p| (p.line, p.code)).collect();
    assert_eq!(found, [(2, "CASE_OWNER_CONFLICT"), (3, "ORDER_OWNER_CONFLICT")]);
    // Nothing of the file was written, not even its valid row.
    assert_eq!(store.case_owner(&CaseNumber::parse("32345678").unwrap()).await.unwrap(), None);
    assert_eq!(store.orders_after(None, 100).await.unwrap().len(), 3);
}

async fn distribution_writes_the_spec_example_and_claims_the_collections(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    // 600.00 in two collections of one date: one pool (spec table, second row).
    collect(&*store, "12345678", "400.00", "2026-11-13").await;
    collect(&*store, "12345679", "200.00", "2026-11-13").await;
    collect(&*store, "22345678", "200.00", "2026-11-14").await;
    let run = store.distribute("2026-11-20T12:00:00Z", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!((run.obligors, run.collections, run.pools), (2, 3, 2));
    assert_eq!(run.total, money("800.00"));
    assert_eq!((run.current, run.arrears, run.unapplied), (money("650.00"), money("100.00"), money("50.00")));
    let allocations = all_allocations(&*store).await;
    let month = Some("2026-11".to_owned());
    assert_eq!(
        allocations,
        [
            ("A".to_owned(), Bucket::Current, month.clone(), money("300.00")),
            ("B".to_owned(), Bucket::Current, month.clone(), money("200.00")),
            ("A".to_owned(), Bucket::Arrears, None, money("25.00")),
            ("B".to_owned(), Bucket::Arrears, None, money("75.00")),
            ("C".to_owned(), Bucket::Current, month, money("150.00")),
            (String::new(), Bucket::Unapplied, None, money("50.00")),
        ]
    );
    let exported = store.allocations_after(0, 10).await.unwrap();
    assert!(exported.iter().all(|a| a.run_id == run.run_id));
    assert_eq!(exported[0].case_number.as_ref().map(|c| c.as_str()), Some("12345678"));
    assert_eq!(exported[5].case_number, None);
}

async fn a_run_with_nothing_pending_changes_nothing(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None);
    collect(&*store, "12345678", "250.00", "2026-11-13").await;
    assert!(store.distribute("t", &plan_obligors, &audit()).await.unwrap().is_some());
    let before = all_allocations(&*store).await;
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None);
    assert_eq!(all_allocations(&*store).await, before);
}

/// A planner that always fails, as a conservation error in production would.
fn failing_planner(inputs: Vec<ObligorInput>) -> Result<Vec<ObligorPlan>, ConservationError> {
    Err(ConservationError {
        obligor_id: inputs[0].obligor_id.to_string(),
        collected: Money::ZERO,
        pooled: Money::ZERO,
        allocated: Money::ZERO,
    })
}

async fn a_failed_plan_leaves_nothing_written(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    collect(&*store, "12345678", "250.00", "2026-11-13").await;
    let error = store.distribute("t", &failing_planner, &audit()).await.unwrap_err();
    assert!(matches!(error, StoreError::Conservation(_)), "{error}");
    assert!(all_allocations(&*store).await.is_empty());
    // The collection is still pending and the next run distributes it.
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("still pending");
    assert_eq!(run.collections, 1);
}

async fn balances_are_derived_from_the_allocations(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    collect(&*store, "12345678", "100.01", "2026-11-13").await;
    store.distribute("t", &plan_obligors, &audit()).await.unwrap();
    let november = gateway::domain::YearMonth::parse("2026-11").unwrap();
    let december = gateway::domain::YearMonth::parse("2026-12").unwrap();
    let first_page = store.orders_after(None, 2).await.unwrap();
    let ids: Vec<_> = first_page.iter().map(|o| o.ledger.order().id.to_string()).collect();
    assert_eq!(ids, ["A", "B"]);
    let (a, b) = (&first_page[0].ledger, &first_page[1].ledger);
    assert_eq!((a.current_due(november), b.current_due(november)), (money("239.99"), money("160.00")));
    // Unpaid November current support is arrears from December on.
    assert_eq!((a.arrears(december), b.arrears(december)), (money("339.99"), money("460.00")));
    let next = store.orders_after(Some(&OrderId::parse("B").unwrap()), 2).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ledger.order().id.as_str(), "C");
    assert_eq!(next[0].obligor_id.as_str(), "OB-2");
}

async fn the_orders_of_cases_come_with_their_owner_employer_arrears_payment_and_ledger(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    // The arrears payment is an optional column: absent, 0; given, stored and compared on
    // re-import like every other term.
    let with_payment = SPEC_REGISTRY
        .replacen("employer_fein\n", "employer_fein,arrears_payment_monthly\n", 1)
        .replace("43-1234567\n", "43-1234567,25.50\n")
        .replace("300.00,\n", "300.00,,\n")
        .replace("0.00,\n", "0.00,,\n");
    let counts = store.import_registry(&entries(&with_payment), &audit()).await.unwrap();
    assert_eq!(counts, RegistryImport::Applied(ImportCounts { added: 0, updated: 1, unchanged: 2 }));
    collect(&*store, "12345678", "100.01", "2026-11-13").await;
    store.distribute("t", &plan_obligors, &audit()).await.unwrap();

    let cases = [CaseNumber::parse("12345679").unwrap(), CaseNumber::parse("12345678").unwrap(), CaseNumber::parse("99999999").unwrap()];
    let orders = store.orders_of_cases(&cases, date("2026-11-30")).await.unwrap();
    let ids: Vec<&str> = orders.iter().map(|o| o.ledger.order().id.as_str()).collect();
    assert_eq!(ids, ["A", "B"], "by case number, then order id; an unknown case has none");
    let (a, b) = (&orders[0], &orders[1]);
    assert_eq!(a.ssn_hmac, hmac_of("123-45-6789"));
    assert_eq!(a.employer_fein.as_ref().map(|f| f.as_str()), Some("431234567"));
    assert_eq!((a.arrears_payment_monthly, b.arrears_payment_monthly), (money("25.50"), Money::ZERO));
    assert_eq!(b.employer_fein, None);
    let november = gateway::domain::YearMonth::parse("2026-11").unwrap();
    assert_eq!(a.ledger.current_due(november), money("239.99"), "the ledger holds what was distributed");
    // As of a day before the collection's effective date, its allocations are not there yet.
    let earlier = store.orders_of_cases(&cases[1..2], date("2026-11-12")).await.unwrap();
    assert_eq!(earlier[0].ledger.current_due(november), money("300.00"));
    assert!(store.orders_of_cases(&[], date("2026-11-30")).await.unwrap().is_empty());
}

async fn a_suspense_item_is_worked_once_even_by_clerks_at_the_same_moment(backend: Backend) {
    use gateway::storage::remittance::{LineCounts, LineEffects, LineToWrite, NewRemittance, StoredLine, SuspenseHold};
    use gateway::storage::suspense::{SuspenseFilter, Worked, Worker};

    let (_db, store) = seeded(backend).await;
    let remittance = NewRemittance { received_at: "2026-11-20T10:00:00Z".into(), ..file_from_acme("S-1") };
    let held = |line: u64, cents: i64| LineToWrite {
        record: StoredLine {
            line,
            status: "SUSPENSE".into(),
            employer_fein: Some("431234567".into()),
            case_number: None,
            ssn_last4: Some("0001".into()),
            amount: Some(Money::from_cents(cents)),
            pay_date: Some(date("2026-11-13")),
            obligor_id: None,
            prenote: false,
            problems: Vec::new(),
        },
        effects: LineEffects {
            collect: None,
            suspense: Some(SuspenseHold { reason: "CASE_AND_SSN_UNKNOWN".into(), ssn_hmac: None }),
            termination_notice: false,
        },
    };
    let mut writer = store.begin_remittance(remittance, audit()).await.unwrap();
    writer.write_lines(vec![held(1, 150_00), held(2, 20_00), held(3, 150_00), held(4, 75_00)].into()).await.unwrap();
    writer.finish(LineCounts { line_count: 4, suspense: 4, total: Money::from_cents(395_00), ..Default::default() }).await.unwrap();

    // Each order, read a page of one at a time from its cursor: the whole list, once.
    use gateway::storage::suspense::{SuspenseCursor, SuspenseOrder};
    for (order, lines) in [
        (SuspenseOrder::OldestFirst, [1, 2, 3, 4]),
        (SuspenseOrder::NewestFirst, [4, 3, 2, 1]),
        (SuspenseOrder::LargestFirst, [1, 3, 4, 2]),
        (SuspenseOrder::SmallestFirst, [2, 4, 1, 3]),
    ] {
        let filter = SuspenseFilter { state: "OPEN".into(), order, ..Default::default() };
        let mut after = None;
        let mut read = Vec::new();
        // At most one read more than there are items: a cursor that stopped advancing fails.
        for _ in 0..=lines.len() {
            let Some(item) = store.suspense_items(&filter, after, 1).await.unwrap().pop() else { break };
            after = Some(SuspenseCursor { amount_cents: item.amount.cents(), suspense_id: item.suspense_id });
            read.push(item.line);
        }
        assert_eq!(read, lines, "{order:?}");
    }

    let open = SuspenseFilter { state: "OPEN".into(), ..Default::default() };
    let items = store.suspense_items(&open, None, 2).await.unwrap();
    assert_eq!(
        items.iter().map(|i| (i.line, i.amount.cents(), i.sender.as_str())).collect::<Vec<_>>(),
        [(1, 150_00, "acme"), (2, 20_00, "acme")]
    );
    let small = SuspenseFilter { max_amount: Some(Money::from_cents(50_00)), ..open.clone() };
    assert_eq!(store.suspense_items(&small, None, 10).await.unwrap().len(), 1);
    let (first, second) = (items[0].suspense_id, items[1].suspense_id);

    // Eight clerks resolve the first item at once: one collection, seven refusals.
    let obligor = ObligorId::parse("OB-1").unwrap();
    let case = CaseNumber::parse("12345678").unwrap();
    let clerks = (0..8).map(|i| {
        let (store, obligor, case) = (store.clone(), obligor.clone(), case.clone());
        tokio::spawn(async move {
            let worker = Worker { name: format!("clerk-{i}"), at: "2026-12-18T09:00:00Z".into() };
            store.resolve_suspense(first, &obligor, Some(&case), &worker, &audit_of("ResolveSuspenseItem")).await.unwrap()
        })
    });
    let outcomes = futures::future::join_all(clerks).await;
    let done: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o.as_ref().unwrap() {
            Worked::Done(done) => Some(done.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o.as_ref().unwrap(), Worked::Done(_) | Worked::NotOpen(_))));
    let (item, collection) = &done[0];
    assert_eq!((item.state.as_str(), item.collection_id), ("RESOLVED", Some(collection.collection_id)));
    assert_eq!((collection.amount, collection.effective_date), (Money::from_cents(150_00), date("2026-11-13")));
    assert_eq!(
        audited_actions(&*store).await.iter().filter(|a| *a == "ResolveSuspenseItem").count(),
        1,
        "the audit row commits with the work"
    );

    // The run distributes exactly that one collection.
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().unwrap();
    assert_eq!((run.collections, run.total), (1, Money::from_cents(150_00)));

    // The second is returned; then neither can be worked again, and an unknown obligor or
    // item changes nothing.
    let worker = Worker { name: "clerk".into(), at: "2026-12-18T10:00:00Z".into() };
    let unknown = ObligorId::parse("OB-404").unwrap();
    assert_eq!(store.resolve_suspense(second, &unknown, None, &worker, &audit()).await.unwrap(), Worked::UnknownObligor);
    let returned = store.return_suspense(second, "not our employee", "CHK-1001", &worker, &audit()).await.unwrap();
    let Worked::Done(returned) = returned else { panic!("{returned:?}") };
    assert_eq!((returned.return_reason.as_deref(), returned.return_reference.as_deref()), (Some("not our employee"), Some("CHK-1001")));
    assert!(matches!(store.resolve_suspense(second, &obligor, None, &worker, &audit()).await.unwrap(), Worked::NotOpen(_)));
    assert!(matches!(store.return_suspense(first, "r", "x", &worker, &audit()).await.unwrap(), Worked::NotOpen(_)));
    assert_eq!(store.return_suspense(9_999, "r", "x", &worker, &audit()).await.unwrap(), Worked::Missing);
    assert!(store.distribute("t", &plan_obligors, &audit()).await.unwrap().is_none(), "a return makes no collection");
    let still_open: Vec<u64> = store.suspense_items(&open, None, 10).await.unwrap().iter().map(|i| i.line).collect();
    assert_eq!(still_open, [3, 4], "only the two worked items left the queue");
}

async fn termination_notices_are_filtered_and_handled_once(backend: Backend) {
    use gateway::storage::remittance::{LineCounts, LineEffects, LineToWrite, NewRemittance, StoredLine};
    use gateway::storage::suspense::Worker;
    use gateway::storage::terminations::{Handled, NoticeFilter};

    let (_db, store) = seeded(backend).await;
    let remittance = NewRemittance { received_at: "2026-11-20T10:00:00Z".into(), ..file_from_acme("T-1") };
    let left = |line: u64, fein: &str, obligor: &str| LineToWrite {
        record: StoredLine {
            line,
            status: "APPLIED".into(),
            employer_fein: Some(fein.into()),
            case_number: None,
            ssn_last4: Some("6789".into()),
            amount: None,
            pay_date: Some(date("2026-11-13")),
            obligor_id: Some(ObligorId::parse(obligor).unwrap()),
            prenote: false,
            problems: Vec::new(),
        },
        effects: LineEffects { collect: None, suspense: None, termination_notice: true },
    };
    let mut writer = store.begin_remittance(remittance, audit()).await.unwrap();
    writer.write_lines(vec![left(1, "431234567", "OB-1"), left(2, "123456789", "OB-2")].into()).await.unwrap();
    writer.finish(LineCounts { line_count: 2, applied: 2, ..Default::default() }).await.unwrap();

    let all = NoticeFilter::default();
    assert_eq!(store.termination_notices(&all, None, 10).await.unwrap().len(), 2);
    let of_acme = NoticeFilter { sender: Some("acme".into()), ..Default::default() };
    assert_eq!(store.termination_notices(&of_acme, None, 10).await.unwrap().len(), 2, "the sender's own files");
    let of_another = NoticeFilter { sender: Some("other".into()), ..Default::default() };
    assert!(store.termination_notices(&of_another, None, 10).await.unwrap().is_empty(), "not another sender's");
    let of_employer = NoticeFilter { employer_fein: Some("123456789".into()), ..Default::default() };
    let found = store.termination_notices(&of_employer, None, 10).await.unwrap();
    assert_eq!(found.iter().map(|n| n.obligor_id.as_ref().unwrap().as_str()).collect::<Vec<_>>(), ["OB-2"]);
    let worker = Worker { name: "clerk".into(), at: "2026-11-21T09:00:00Z".into() };
    let Handled::Done(done) =
        store.mark_notice_handled(found[0].notice_id, &worker, &audit_of("MarkTerminationNoticeHandled")).await.unwrap()
    else {
        panic!("the first mark is done")
    };
    assert_eq!(done.handled_by.as_deref(), Some("clerk"));
    assert!(matches!(store.mark_notice_handled(found[0].notice_id, &worker, &audit()).await.unwrap(), Handled::Already(_)));
    assert_eq!(store.mark_notice_handled(999, &worker, &audit()).await.unwrap(), Handled::Missing);
    let open = NoticeFilter { handled: Some(false), ..Default::default() };
    assert_eq!(store.termination_notices(&open, None, 10).await.unwrap().len(), 1);
    let handled = NoticeFilter { handled: Some(true), obligor_id: Some("OB-2".into()), ..Default::default() };
    assert_eq!(store.termination_notices(&handled, None, 10).await.unwrap().len(), 1);
    assert_eq!(audited_actions(&*store).await.iter().filter(|a| *a == "MarkTerminationNoticeHandled").count(), 1);
}

async fn review_requests_are_decided_from_the_last_one_and_recorded_with_their_audit_row(backend: Backend) {
    use gateway::domain::review::decide;
    use gateway::storage::reviews::{NewReview, ReviewOutcome};

    let (_db, store) = seeded(backend).await;
    let new = |order: &str, on: &str, reason: &str| NewReview {
        order_id: OrderId::parse(order).unwrap(),
        requested_on: date(on),
        channel: "FAX",
        reason: reason.into(),
        recorded_by: "clerk".into(),
        recorded_at: "2026-11-20T10:00:00Z".into(),
    };
    let rule_for =
        |on: &'static str, reason: &'static str| move |start: NaiveDate, last: Option<NaiveDate>| decide(start, last, date(on), reason);
    let review = new("A", "2026-11-20", "moved");
    let recorded = store.record_review(&review, &rule_for("2026-11-20", "moved"), &audit_of("RequestOrderReview")).await.unwrap();
    let ReviewOutcome::Recorded(first) = recorded else { panic!("{recorded:?}") };
    assert_eq!((first.case_number.as_str(), first.channel.as_str()), ("12345678", "FAX"));
    // The rule sees the order's start (2026-11-01) and that review as the last one.
    let late = new("A", "2029-11-19", "");
    let refused = store.record_review(&late, &rule_for("2029-11-19", ""), &audit()).await.unwrap();
    assert_eq!(refused, ReviewOutcome::Refused { free_from: date("2029-11-20") });
    let unknown = new("NOPE", "2029-11-19", "x");
    assert_eq!(store.record_review(&unknown, &rule_for("2029-11-19", "x"), &audit()).await.unwrap(), ReviewOutcome::UnknownOrder);
    let listed = store.review_requests(Some(&OrderId::parse("A").unwrap()), None, 10).await.unwrap();
    assert_eq!(listed, [first]);
    assert!(store.review_requests(Some(&OrderId::parse("B").unwrap()), None, 10).await.unwrap().is_empty());
    assert_eq!(audited_actions(&*store).await.iter().filter(|a| *a == "RequestOrderReview").count(), 1);
}

async fn reports_aggregate_collections_late_lines_and_open_suspense(backend: Backend) {
    use gateway::storage::remittance::{LineCounts, LineEffects, LineToWrite, NewRemittance, StoredLine, StoredProblem, SuspenseHold};

    let (_db, store) = seeded(backend).await;
    collect(&*store, "12345678", "10.00", "2026-11-13").await;
    collect(&*store, "12345679", "5.50", "2026-11-13").await;
    let remittance = NewRemittance { received_at: "2026-11-20T10:00:00Z".into(), ..file_from_acme("L-1") };
    let late =
        StoredProblem { code: "LATE_REMITTANCE".into(), field: "pay_date".into(), severity: "WARNING".into(), message: "late".into() };
    let line = |number: u64, status: &str, problems: Vec<StoredProblem>| StoredLine {
        line: number,
        status: status.into(),
        employer_fein: Some("431234567".into()),
        case_number: None,
        ssn_last4: Some("0001".into()),
        amount: Some(Money::from_cents(30_00)),
        pay_date: Some(date("2026-10-01")),
        obligor_id: None,
        prenote: false,
        problems,
    };
    let none = LineEffects { collect: None, suspense: None, termination_notice: false };
    let lines = [
        LineToWrite {
            record: line(1, "SUSPENSE", vec![late.clone()]),
            effects: LineEffects { suspense: Some(SuspenseHold { reason: "X".into(), ssn_hmac: None }), ..none.clone() },
        },
        LineToWrite { record: line(2, "REJECTED", vec![late.clone()]), effects: none.clone() },
        LineToWrite {
            record: line(3, "SUSPENSE", Vec::new()),
            effects: LineEffects { suspense: Some(SuspenseHold { reason: "X".into(), ssn_hmac: None }), ..none },
        },
    ];
    let mut writer = store.begin_remittance(remittance, audit()).await.unwrap();
    writer.write_lines(lines.to_vec().into()).await.unwrap();
    writer
        .finish(LineCounts { line_count: 3, suspense: 2, rejected: 1, total: Money::from_cents(60_00), ..Default::default() })
        .await
        .unwrap();

    let days = store.collections_by_day(None, None).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].day.as_str(), days[0].source.as_str(), days[0].employer_fein.as_str()), ("2026-11-20", "MANUAL", ""));
    assert_eq!((days[0].collections, days[0].amount), (2, money("15.50")));
    assert!(store.collections_by_day(Some(date("2026-11-21")), None).await.unwrap().is_empty());
    let late_lines = store.late_lines(None, None).await.unwrap();
    assert_eq!(late_lines.len(), 1, "the rejected late line does not count");
    assert_eq!(
        (late_lines[0].pay_date, late_lines[0].received_on, late_lines[0].amount),
        (date("2026-10-01"), date("2026-11-20"), money("30.00"))
    );
    let open = store.open_suspense_by_day().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].received_on, open[0].items, open[0].amount), (date("2026-11-20"), 2, money("60.00")));
    assert_eq!(store.pending_total().await.unwrap(), money("15.50"));
}

async fn orders_of_grown_children_without_an_end_are_found_by_birth_date(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let registry = "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,end_date,child_birth_date,continuing_education,impaired\n\
                    OB-1,123-45-6789,Smith,John,12345671,P1,100.00,2020-01,0,,2008-12-03,Y,\n\
                    OB-1,123-45-6789,Smith,John,12345672,P2,100.00,2020-01,0,2025-01-31,2007-01-01,,\n\
                    OB-1,123-45-6789,Smith,John,12345673,P3,100.00,2020-01,0,,2008-12-04,,\n\
                    OB-1,123-45-6789,Smith,John,12345674,P4,100.00,2020-01,0,,,,\n";
    assert!(matches!(store.import_registry(&entries(registry), &audit()).await.unwrap(), RegistryImport::Applied(_)));
    let found = store.orders_without_end_born_by(date("2008-12-03"), None, 10).await.unwrap();
    assert_eq!(found.len(), 1, "ended, younger and unknown-birth orders are not");
    assert_eq!(
        (found[0].order_id.as_str(), found[0].child_birth_date, found[0].continuing_education),
        ("P1", date("2008-12-03"), Some(true))
    );
    assert!(store.orders_without_end_born_by(date("2008-12-03"), Some(&OrderId::parse("P1").unwrap()), 10).await.unwrap().is_empty());
}

/// 1,100 obligors (more than two chunks of 500), each with an order of 100.00 a month and
/// one pending collection of 150.00.
const MANY_OBLIGORS: usize = 1_100;

async fn many_obligors_with_a_collection_each(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut csv = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n",
    );
    for i in 0..MANY_OBLIGORS {
        csv.push_str(&format!("OB{i:05},{:09},Last,First,{:08},ORD{i:05},100.00,2026-11,0\n", 100_000_000 + i, 10_000_000 + i));
    }
    assert!(matches!(store.import_registry(&entries(&csv), &audit()).await.unwrap(), RegistryImport::Applied(_)));
    for i in 0..MANY_OBLIGORS {
        collect(&*store, &format!("{:08}", 10_000_000 + i), "150.00", "2026-11-13").await;
    }
    (db, store)
}

async fn a_run_spans_several_batches_of_obligors(backend: Backend) {
    let (_db, store) = many_obligors_with_a_collection_each(backend).await;
    let obligors = MANY_OBLIGORS;
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!((run.obligors, run.collections, run.pools), (obligors as u64, obligors as u64, obligors as u64));
    assert_eq!(run.current, Money::from_cents(100_00 * obligors as i64));
    assert_eq!(run.unapplied, Money::from_cents(50_00 * obligors as i64));
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None);
}

/// Writes a file of `lines` collections of the many obligors in `obligors`, line `n` for the
/// `n`-th of them (modulo their number) with `n` cents over a dollar, in batches of 1,000
/// lines as intake does; its total.
async fn file_of_many_obligors(store: &dyn Store, batch: &str, lines: u64, first_line: u64, obligors: std::ops::Range<usize>) -> Money {
    use gateway::storage::remittance::{LineCounts, LineEffects, LineToWrite, PayrollCollection, StoredLine};
    let mut writer = store.begin_remittance(file_from_acme(batch), audit()).await.unwrap();
    let mut total = Money::ZERO;
    for start in (first_line..first_line + lines).step_by(1000) {
        let batch: Vec<LineToWrite> = (start..(start + 1000).min(first_line + lines))
            .map(|n| {
                let obligor = obligors.start + n as usize % obligors.len();
                let amount = Money::from_cents(100 + n as i64 % 100);
                total += amount;
                let case = format!("{:08}", 10_000_000 + obligor);
                LineToWrite {
                    record: StoredLine {
                        line: n - first_line + 1,
                        status: "APPLIED".into(),
                        employer_fein: Some("431234567".into()),
                        case_number: Some(case.clone()),
                        ssn_last4: Some("6789".into()),
                        amount: Some(amount),
                        pay_date: Some(date("2026-11-13")),
                        obligor_id: Some(ObligorId::parse(&format!("OB{obligor:05}")).unwrap()),
                        prenote: false,
                        problems: vec![],
                    },
                    effects: LineEffects {
                        collect: Some(PayrollCollection { case_number: Some(case) }),
                        suspense: None,
                        termination_notice: false,
                    },
                }
            })
            .collect();
        writer.write_lines(batch.into()).await.unwrap();
    }
    let counts = LineCounts { line_count: lines, total, applied: lines, applied_by_ssn: 0, suspense: 0, rejected: 0 };
    writer.finish(counts).await.unwrap();
    total
}

/// A file's collections are queued a segment at a time (about 16,384 or more to a segment,
/// each sorted by obligor), those received one at a time and a file's last few in segment 0,
/// before, between and after files: one run distributes every one once, over many chunks, and each obligor's
/// money whole; a collection received after the run, however far along the registry its
/// obligor is, is found by the next run.
async fn collections_queued_by_files_and_one_at_a_time_are_each_distributed_once(backend: Backend) {
    let (db, store) = many_obligors_with_a_collection_each(backend).await;
    let mut total = Money::from_cents(150_00 * MANY_OBLIGORS as i64);
    total += file_of_many_obligors(&*store, "F-1", 20_000, 0, 0..MANY_OBLIGORS).await;
    collect(&*store, "10000007", "1.00", "2026-11-13").await;
    total += Money::from_cents(100) + file_of_many_obligors(&*store, "F-2", 3_000, 20_000, 0..MANY_OBLIGORS).await;
    collect(&*store, "10000003", "2.00", "2026-11-14").await;
    total += Money::from_cents(200);

    // Each segment, by its number: how many it holds, and whether it is numbered by its
    // first collection.
    let shape = "SELECT segment, COUNT(*), segment = 0 OR segment = MIN(collection_id) FROM pending_collections GROUP BY segment ORDER BY segment";
    let segments: Vec<(i64, i64, bool)> = match backend {
        Backend::Sqlite => sqlx::query_as(shape).fetch_all(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap(),
        Backend::Postgres => sqlx::query_as(shape).fetch_all(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap(),
    };
    let counts: Vec<(i64, bool)> = segments.iter().map(|&(_, count, numbered)| (count, numbered)).collect();
    let one_at_a_time = MANY_OBLIGORS as i64 + 2;
    match backend {
        // A segment is queued once a batch of lines takes the file to 16,384 collections; a
        // file's last few (fewer than 4,096), and a small file's, go into segment 0.
        Backend::Sqlite => assert_eq!(counts, [(one_at_a_time + 3_000 + 3_000, true), (17_000, true)]),
        // On PostgreSQL a file's collections are queued after they were sent (every 4,096
        // lines or more: here 5,000), once that takes the file to 16,384: all 20,000 of F-1.
        Backend::Postgres => assert_eq!(counts, [(one_at_a_time + 3_000, true), (20_000, true)]),
    }

    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    let collections = MANY_OBLIGORS as u64 + 20_000 + 3_000 + 2;
    assert_eq!((run.obligors, run.collections, run.total), (MANY_OBLIGORS as u64, collections, total));
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None, "nothing is left queued");
    let report = store.verify_ledger("2026-11-20T12:00:00.000Z").await.unwrap();
    assert!(report.is_clean(), "{:?}", report.checks);

    let last_case = format!("{:08}", 10_000_000 + MANY_OBLIGORS - 1);
    collect(&*store, &last_case, "3.00", "2026-11-15").await;
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!((run.obligors, run.collections, run.total), (1, 1, money("3.00")));
    let report = store.verify_ledger("2026-11-20T12:00:00.000Z").await.unwrap();
    assert!(report.is_clean(), "{:?}", report.checks);
}

/// A chunk sized across a sparse stretch of the queue that meets a dense one is read again with
/// less of the registry, down to the least span, which is taken whole: the last 100 obligors
/// hold 70,000 collections (more than a chunk's read takes), the 1,000 before them one each.
async fn a_chunk_too_big_to_load_is_read_again_smaller_and_nothing_is_left_or_split(backend: Backend) {
    let (_db, store) = many_obligors_with_a_collection_each(backend).await;
    let dense = file_of_many_obligors(&*store, "DENSE", 70_000, 0, MANY_OBLIGORS - 100..MANY_OBLIGORS).await;
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    let total = Money::from_cents(150_00 * MANY_OBLIGORS as i64) + dense;
    assert_eq!((run.obligors, run.collections, run.total), (MANY_OBLIGORS as u64, MANY_OBLIGORS as u64 + 70_000, total));
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None, "nothing is left queued");
    let report = store.verify_ledger("2026-11-20T12:00:00.000Z").await.unwrap();
    assert!(report.is_clean(), "{:?}", report.checks);
}

async fn allocations_cannot_be_altered(backend: Backend) {
    let (db, store) = seeded(backend).await;
    collect(&*store, "12345678", "250.00", "2026-11-13").await;
    store.distribute("t", &plan_obligors, &audit()).await.unwrap();
    let update = "UPDATE allocations SET amount_cents = 1";
    let delete = "DELETE FROM allocations";
    let refused = match backend {
        Backend::Sqlite => {
            let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
            (sqlx::query(update).execute(&mut connection).await.is_err(), sqlx::query(delete).execute(&mut connection).await.is_err())
        }
        Backend::Postgres => {
            let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
            (sqlx::query(update).execute(&mut connection).await.is_err(), sqlx::query(delete).execute(&mut connection).await.is_err())
        }
    };
    assert_eq!(refused, (true, true));
    assert_eq!(all_allocations(&*store).await.len(), 2);
}

async fn two_replicas_never_distribute_a_collection_twice(backend: Backend) {
    let (db, store) = seeded(backend).await;
    let replica = db.store().await;
    for day in 1..=20 {
        collect(&*store, "12345678", "10.00", &format!("2026-11-{day:02}")).await;
        collect(&*store, "22345678", "7.00", &format!("2026-11-{day:02}")).await;
    }
    let audit = audit();
    let (first, second) = tokio::join!(store.distribute("a", &plan_obligors, &audit), replica.distribute("b", &plan_obligors, &audit));
    let runs: Vec<_> = [first.unwrap(), second.unwrap()].into_iter().flatten().collect();
    let distributed: u64 = runs.iter().map(|r| r.collections).sum();
    assert_eq!(distributed, 40, "every collection exactly once");
    let total: Money = all_allocations(&*store).await.iter().map(|a| a.3).sum();
    assert_eq!(total, money("340.00"));
}

async fn a_setting_keeps_its_first_value(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert_eq!(store.setting_or_insert("k", "first").await.unwrap(), "first");
    assert_eq!(store.setting_or_insert("k", "second").await.unwrap(), "first");
    assert_eq!(
        store.backend(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
}

async fn payments_are_recorded_and_returns_reverse_them(backend: Backend) {
    use gateway::domain::distribution::reversal_entries;
    use gateway::storage::payment::{NewPayment, ReturnOutcome};

    let (_db, store) = seeded(backend).await;
    let account = bank_account;
    let payer_id = store.create_payer(payer_of_case_12345678(), account(), &audit()).await.unwrap();
    assert!(!store.add_bank_account(payer_id, account(), &audit()).await.unwrap(), "one bank account per payer");
    store.record_prenote(payer_id, Some("R03".into()), &audit()).await.unwrap();
    let record = store.payer(payer_id).await.unwrap().unwrap();
    assert_eq!(record.account.as_ref().unwrap().prenote_return_code.as_deref(), Some("R03"));
    store.replace_bank_account(payer_id, account(), &audit()).await.unwrap();
    let replaced = store.payer(payer_id).await.unwrap().unwrap().account.unwrap();
    assert_ne!(replaced.account_id, record.account.unwrap().account_id);
    assert_eq!(replaced.prenote_result, None);

    let payment = |key: &str, cents: i64| NewPayment {
        payer_id,
        account_id: replaced.account_id,
        case_number: CaseNumber::parse("12345678").unwrap(),
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        amount: Money::from_cents(cents),
        channel: "WEB",
        accepted_on: date("2026-11-13"),
        accepted_at: "t".into(),
        idempotency_key: key.into(),
        request_sha256: "h".into(),
    };
    let first = store.create_payment(payment("k1", 100_00), &audit()).await.unwrap();
    assert!(matches!(store.create_payment(payment("k1", 100_00), &audit()).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.payment_by_key(payer_id, "k1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.payment_by_trace(&first.trace_number).await.unwrap().map(|p| p.payment_id), Some(first.payment_id));
    // Pooled with a payroll collection of the same date, then returned.
    collect(&*store, "12345678", "200.00", "2026-11-13").await;
    store.distribute("t", &plan_obligors, &audit()).await.unwrap();
    let planner = |rows: &[gateway::domain::distribution::PoolRow], amount: Money| reversal_entries(rows, amount);
    let ReturnOutcome::Reversed { entries, .. } =
        store.return_payment(first.payment_id, "R01", "t", false, &planner, Some(&audit())).await.unwrap()
    else {
        panic!("a distributed payment is reversed")
    };
    assert_eq!(entries.iter().map(|e| e.amount).collect::<Vec<_>>(), [money("-60.00"), money("-40.00")]);
    assert_eq!(all_allocations(&*store).await.iter().map(|a| a.3).sum::<Money>(), money("200.00"));
    let again = store.return_payment(first.payment_id, "R01", "t", false, &planner, Some(&audit())).await.unwrap();
    assert_eq!(again, ReturnOutcome::AlreadyReturned("R01".into()));
    // A payment returned before distribution is simply never distributed.
    let second = store.create_payment(payment("k2", 40_00), &audit()).await.unwrap();
    let cancelled = store.return_payment(second.payment_id, "R03", "t", true, &planner, Some(&audit())).await.unwrap();
    assert_eq!(cancelled, ReturnOutcome::CancelledBeforeDistribution);
    assert_eq!(store.payer(payer_id).await.unwrap().unwrap().account.unwrap().unusable_code.as_deref(), Some("R03"));
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None);
    let orders = store.orders_of_obligor(&ObligorId::parse("OB-1").unwrap()).await.unwrap();
    assert_eq!(
        orders.iter().map(|(o, fein)| (o.id.to_string(), fein.clone())).collect::<Vec<_>>(),
        [("A".into(), Some("431234567".into())), ("B".into(), None)]
    );
}

fn bank_account() -> gateway::storage::payment::NewBankAccount {
    gateway::storage::payment::NewBankAccount {
        routing_number: "091000019".into(),
        account_cipher: "sealed".into(),
        account_last4: "6789".into(),
        account_type: "CHECKING",
        added_on: date("2026-11-02"),
    }
}

fn payer_of_case_12345678() -> gateway::storage::payment::NewPayer {
    gateway::storage::payment::NewPayer {
        name: "John Smith".into(),
        address: "1 Main St".into(),
        ssn_hmac: hmac_of("123-45-6789"),
        ssn_last4: "6789".into(),
        telephone: "5735550100".into(),
        email: "john@example.com".into(),
        case_number: CaseNumber::parse("12345678").unwrap(),
        created_at: "t".into(),
    }
}

/// A payment's context is what the four reads it replaces answered: the key's payment, the
/// payer with their account, the case's owner and the owner's orders; each absent when there
/// is none.
async fn a_payments_context_is_its_key_payer_and_case_owner_read_at_once(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    let payer_id = store.create_payer(payer_of_case_12345678(), bank_account(), &audit()).await.unwrap();
    // A prenote returned: the account's columns that are otherwise null are told apart.
    store.record_prenote(payer_id, Some("R03".into()), &audit()).await.unwrap();
    let case = CaseNumber::parse("12345678").unwrap();
    let unknown_case = CaseNumber::parse("99999999").unwrap();
    let before = store.payment_context(payer_id, "k1", Some(&case)).await.unwrap();
    assert_eq!(before.first, None);
    assert_eq!(before.payer, store.payer(payer_id).await.unwrap());
    assert_eq!(before.payer.as_ref().unwrap().account.as_ref().unwrap().prenote_return_code.as_deref(), Some("R03"));
    assert_eq!(before.case_owner, Some(ObligorId::parse("OB-1").unwrap()));
    let owner_orders = store.orders_of_obligor(&ObligorId::parse("OB-1").unwrap()).await.unwrap();
    assert_eq!(owner_orders.len(), 2, "the seeded obligor has two orders");
    assert_eq!(before.owner_orders, owner_orders, "the case owner's orders, each with its employer's FEIN, in order");
    let unknown = store.payment_context(payer_id, "k1", Some(&unknown_case)).await.unwrap();
    assert_eq!((unknown.case_owner, unknown.owner_orders.len()), (None, 0));
    assert_eq!(unknown.payer, before.payer, "the payer is read whatever the case");
    assert_eq!(store.payment_context(payer_id, "k1", None).await.unwrap().case_owner, None);
    let nobody = store.payment_context(payer_id + 1000, "k1", Some(&case)).await.unwrap();
    assert_eq!((nobody.first, nobody.payer), (None, None));
    assert_eq!((nobody.case_owner, nobody.owner_orders), (before.case_owner.clone(), owner_orders.clone()), "the case is read whoever asks");

    let account_id = before.payer.unwrap().account.unwrap().account_id;
    let new = gateway::storage::payment::NewPayment {
        payer_id,
        account_id,
        case_number: case.clone(),
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        amount: money("25.00"),
        channel: "PHONE",
        accepted_on: date("2026-11-13"),
        accepted_at: "t".into(),
        idempotency_key: "k1".into(),
        request_sha256: "h".into(),
    };
    let paid = store.create_payment(new, &audit()).await.unwrap();
    let after = store.payment_context(payer_id, "k1", Some(&case)).await.unwrap();
    assert_eq!(after.first.as_ref(), Some(&paid));
    assert_eq!(after.first, store.payment_by_key(payer_id, "k1").await.unwrap());
    assert_eq!(store.payment_context(payer_id, "k2", Some(&case)).await.unwrap().first, None);
}

/// The index a server matches files' lines with answers as the database does, and the
/// generation it was read at moves whenever what it holds changes, whoever changes it.
async fn the_registry_generation_rises_with_each_change_and_the_index_holds_the_registry_read_at_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let case = |number: &str| CaseNumber::parse(number).unwrap();

    let empty = store.registry_generation().await.unwrap();
    let index = store.registry_index().await.unwrap().unwrap();
    assert_eq!((index.generation(), index.len()), (empty, (0, 0)));

    store.import_registry(&entries(SPEC_REGISTRY), &audit()).await.unwrap();
    let imported = store.registry_generation().await.unwrap();
    assert_ne!(imported, empty);
    let index = store.registry_index().await.unwrap().unwrap();
    assert_eq!((index.generation(), index.len()), (imported, (2, 3)));
    for number in ["12345678", "12345679", "22345678", "99999999"] {
        assert_eq!(index.obligor_of_case(&case(number)), store.case_owner(&case(number)).await.unwrap(), "{number}");
    }
    assert_eq!(ssn_owners(&index, "123-45-6789"), ["OB-1"]);
    assert_eq!(ssn_owners(&index, "223-45-6789"), ["OB-2"]);
    assert!(ssn_owners(&index, "423-45-6789").is_empty());
    let ob1 = CaseMatch::SsnMatches(ObligorId::parse("OB-1").unwrap());
    assert_eq!(index.case_with_ssn(&case("12345678"), &hmac_bytes_of("123-45-6789")), ob1);
    assert_eq!(index.case_with_ssn(&case("12345678"), &hmac_bytes_of("223-45-6789")), CaseMatch::OtherSsn);
    assert_eq!(index.case_with_ssn(&case("99999999"), &hmac_bytes_of("123-45-6789")), CaseMatch::NoSuchCase);

    // A new obligor with OB-1's SSN, and a case of its own: both answers move.
    let more = format!("{SPEC_REGISTRY}OB-3,123-45-6789,Smith,Jon,32345678,E,10.00,2026-12,0.00,\n");
    store.import_registry(&entries(&more), &audit()).await.unwrap();
    let grown = store.registry_generation().await.unwrap();
    assert_ne!(grown, imported);
    let index = store.registry_index().await.unwrap().unwrap();
    assert_eq!((index.generation(), index.len()), (grown, (3, 4)));
    assert_eq!(index.obligor_of_case(&case("32345678")), Some(ObligorId::parse("OB-3").unwrap()));
    assert_eq!(ssn_owners(&index, "123-45-6789"), ["OB-1", "OB-3"]);

    // A statement written by hand moves it too: OB-2's SSN corrected outside the gateway.
    db.execute_by_hand(&format!("UPDATE obligors SET ssn_hmac = '{}' WHERE obligor_id = 'OB-2'", hmac_of("523-45-6789"))).await;
    let corrected = store.registry_generation().await.unwrap();
    assert_ne!(corrected, grown);
    let index = store.registry_index().await.unwrap().unwrap();
    assert_eq!(index.generation(), corrected);
    assert!(ssn_owners(&index, "223-45-6789").is_empty());
    assert_eq!(ssn_owners(&index, "523-45-6789"), ["OB-2"]);

    // A stored key the index cannot hold: the index says which, and files are matched from
    // the database instead.
    db.execute_by_hand("UPDATE obligors SET ssn_hmac = 'not an hmac' WHERE obligor_id = 'OB-2'").await;
    let unindexable = store.registry_index().await.unwrap().err().expect("an HMAC the index cannot hold");
    assert_eq!(unindexable.key, gateway::domain::registry_index::UnindexableKey::SsnHmac);
    assert_eq!(unindexable.generation, store.registry_generation().await.unwrap());
}

/// Sets the number the next payment's trace is made from, as if that many payments had been
/// taken (SQLite: a row of its own; PostgreSQL: a sequence).
async fn set_next_trace(db: &TestDb, backend: Backend, next: i64) {
    let statement = match backend {
        Backend::Sqlite => format!("UPDATE payment_trace_sequence SET next = {next}"),
        Backend::Postgres => format!("SELECT setval('payment_trace_sequence', {next}, false)"),
    };
    db.execute_by_hand(&statement).await;
}

/// A trace number is the ODFI prefix and a 7-digit sequence, which comes round: drawn from
/// the payments' own sequence, a number is issued again only 10,000,000 payments later, and
/// that payment is taken like any other (it was refused when the numbers were UNIQUE). A
/// return quotes a number within its return window, so it names the newest payment with it.
async fn trace_numbers_come_round_after_ten_million_payments_and_a_return_names_the_newest(backend: Backend) {
    let (db, store) = seeded(backend).await;
    let payer_id = store.create_payer(payer_of_case_12345678(), bank_account(), &audit()).await.unwrap();
    let account_id = store.payer(payer_id).await.unwrap().unwrap().account.unwrap().account_id;
    let payment = |key: &str| gateway::storage::payment::NewPayment {
        payer_id,
        account_id,
        case_number: CaseNumber::parse("12345678").unwrap(),
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        amount: money("10.00"),
        channel: "WEB",
        accepted_on: date("2026-11-13"),
        accepted_at: "t".into(),
        idempotency_key: key.into(),
        request_sha256: "h".into(),
    };
    set_next_trace(&db, backend, 9_999_999).await;
    let last_of_a_cycle = store.create_payment(payment("k1"), &audit()).await.unwrap();
    let first_of_the_next = store.create_payment(payment("k2"), &audit()).await.unwrap();
    assert_eq!(last_of_a_cycle.trace_number, "091000019999999");
    assert_eq!(first_of_the_next.trace_number, "091000010000000", "the 7 digits come round");
    // Ten million payments later, the first number is issued again, and the payment taken.
    set_next_trace(&db, backend, 19_999_999).await;
    let again = store.create_payment(payment("k3"), &audit()).await.unwrap();
    assert_eq!(again.trace_number, last_of_a_cycle.trace_number);
    assert_ne!(again.payment_id, last_of_a_cycle.payment_id);
    let returned = store.payment_by_trace("091000019999999").await.unwrap().map(|p| p.payment_id);
    assert_eq!(returned, Some(again.payment_id), "a return names the newest payment with its number");
    assert_eq!(store.payment_by_trace("091000010000000").await.unwrap().map(|p| p.payment_id), Some(first_of_the_next.payment_id));
    assert_eq!(store.payment_by_trace("091000010000001").await.unwrap(), None);
    let report = store.verify_ledger("2026-11-20T12:00:00.000Z").await.unwrap();
    assert!(report.is_clean(), "{:?}", report.checks);
}

/// Payments sent at once share commits (both backends commit them in groups): each is
/// still answered for itself. Thirty at once, ten of them repeating a key sent beside them:
/// each key is paid exactly once, whichever of its two sends wins, the other is answered
/// `Conflict`, and the ledger verifies whole.
async fn payments_sent_at_once_are_each_committed_once(backend: Backend) {
    use gateway::storage::payment::NewPayment;

    let (_db, store) = seeded(backend).await;
    let payer_id = store.create_payer(payer_of_case_12345678(), bank_account(), &audit()).await.unwrap();
    let account_id = store.payer(payer_id).await.unwrap().unwrap().account.unwrap().account_id;
    let payment = move |key: usize| NewPayment {
        payer_id,
        account_id,
        case_number: CaseNumber::parse("12345678").unwrap(),
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        amount: Money::from_cents(100_00 + key as i64),
        channel: "WEB",
        accepted_on: date("2026-11-13"),
        accepted_at: "t".into(),
        idempotency_key: format!("key-{key}"),
        request_sha256: format!("h{key}"),
    };
    let sends = (0..20).chain(0..10).map(|key| {
        let store = store.clone();
        tokio::spawn(async move { (key, store.create_payment(payment(key), &audit()).await) })
    });
    let mut paid = std::collections::BTreeMap::new();
    let mut refused = 0;
    for send in futures::future::join_all(sends).await {
        match send.unwrap() {
            (key, Ok(record)) => {
                assert_eq!((record.amount, record.request_sha256.as_str()), (Money::from_cents(100_00 + key as i64), format!("h{key}").as_str()));
                assert!(paid.insert(key, record).is_none(), "key-{key} paid twice");
            }
            (_, Err(StoreError::Conflict(_))) => refused += 1,
            (key, Err(error)) => panic!("key-{key}: {error}"),
        }
    }
    assert_eq!((paid.len(), refused), (20, 10));
    for (key, record) in &paid {
        assert_eq!(store.payment_by_key(payer_id, &format!("key-{key}")).await.unwrap().as_ref(), Some(record));
    }
    let collections: std::collections::BTreeSet<i64> = paid.values().map(|record| record.collection_id).collect();
    assert_eq!(collections.len(), 20, "a collection of its own for each payment");
    let report = store.verify_ledger("t").await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// Sixteen files open at once, each reading the registry while its transaction is open (as
/// ingestion does for every batch), all commit. On PostgreSQL an open file holds one of the
/// pool's 16 connections and its lookup borrows another: unbounded, 16 open files starved
/// their own lookups until the pool's acquire timeout.
async fn many_files_open_at_once_each_read_the_registry_and_commit(backend: Backend) {
    use gateway::storage::remittance::LineCounts;

    let (_db, store) = seeded(backend).await;
    let started = std::time::Instant::now();
    let files = (0..16).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let writer = store.begin_remittance(file_from_acme(&format!("OPEN-{n}")), audit()).await.unwrap();
            // Every file is open before any reads: the reads must not need a connection
            // another open file holds.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let page = store.directory(vec!["12345678".into()], Vec::new()).await.unwrap();
            assert_eq!(page.cases.get("12345678").map(|o| o.as_str()), Some("OB-1"));
            writer.finish(LineCounts::default()).await.unwrap().remittance_id
        })
    });
    let ids: Vec<i64> = futures::future::join_all(files).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 16, "sixteen files committed");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "no file waited for the pool's timeout: {:?}", started.elapsed());
}

async fn a_remittance_file_is_written_whole_or_not_at_all(backend: Backend) {
    use gateway::storage::remittance::{
        LineCounts, LineEffects, LineToWrite, PayrollCollection, StoredLine, StoredProblem, SuspenseHold,
    };

    let (_db, store) = seeded(backend).await;
    let remittance = file_from_acme;
    let line = |number: u64, status: &str, obligor: Option<&str>| StoredLine {
        line: number,
        status: status.into(),
        employer_fein: Some("431234567".into()),
        case_number: Some("12345678".into()),
        ssn_last4: Some("6789".into()),
        amount: Some(Money::from_cents(100_00)),
        pay_date: Some(date("2026-11-13")),
        obligor_id: obligor.map(|o| ObligorId::parse(o).unwrap()),
        prenote: false,
        problems: vec![StoredProblem { code: "X".into(), field: "amount".into(), severity: "WARNING".into(), message: "m".into() }],
    };
    let none = LineEffects { collect: None, suspense: None, termination_notice: false };
    let lines = vec![
        LineToWrite {
            record: line(1, "APPLIED", Some("OB-1")),
            effects: LineEffects { collect: Some(PayrollCollection { case_number: Some("12345678".into()) }), ..none.clone() },
        },
        LineToWrite {
            record: line(2, "SUSPENSE", None),
            effects: LineEffects {
                suspense: Some(SuspenseHold { reason: "SSN_MISMATCH".into(), ssn_hmac: Some("h".into()) }),
                ..none.clone()
            },
        },
        LineToWrite {
            record: line(3, "APPLIED_BY_SSN", Some("OB-1")),
            effects: LineEffects { collect: Some(PayrollCollection { case_number: None }), termination_notice: true, ..none.clone() },
        },
    ];

    // A writer dropped before `finish` leaves nothing: not even the batch id.
    let mut abandoned = store.begin_remittance(remittance("B-1"), audit()).await.unwrap();
    abandoned.write_lines(lines.to_vec().into()).await.unwrap();
    drop(abandoned);
    assert_eq!(store.remittance_by_batch("acme", "B-1").await.unwrap(), None);

    let mut writer = store.begin_remittance(remittance("B-1"), audit()).await.unwrap();
    let (ob1, unknown) = (hmac_of("123-45-6789"), hmac_of("423-45-6789"));
    // The registry is read beside the open file's transaction, not blocked by it.
    let page = store.directory(vec!["12345678".into(), "99999999".into()], vec![ob1.clone(), unknown.clone()]).await.unwrap();
    assert_eq!(page.cases.get("12345678").map(|o| o.as_str()), Some("OB-1"));
    assert!(!page.cases.contains_key("99999999"));
    assert_eq!(
        page.obligors_by_ssn.get(&ob1).map(|o| o.iter().map(|id| id.to_string()).collect::<Vec<_>>()),
        Some(vec!["OB-1".to_owned()])
    );
    assert!(!page.obligors_by_ssn.contains_key(&unknown));
    writer.write_lines(lines.to_vec().into()).await.unwrap();
    let counts = LineCounts { line_count: 3, total: Money::from_cents(300_00), applied: 1, applied_by_ssn: 1, suspense: 1, rejected: 0 };
    let summary = writer.finish(counts).await.unwrap();
    assert_eq!(summary.counts, counts);
    assert!(matches!(store.begin_remittance(remittance("B-1"), audit()).await, Err(StoreError::Conflict(_))));

    assert_eq!(store.remittance_by_batch("acme", "B-1").await.unwrap(), Some(summary.clone()));
    assert_eq!(store.remittance_by_batch("other", "B-1").await.unwrap(), None);
    assert_eq!(store.remittance_by_content("acme", "sha-B-1").await.unwrap().map(|r| r.batch_id), Some("B-1".into()));
    let of_acme = gateway::storage::remittance::FileFilter { sender: Some("acme".into()), ..Default::default() };
    assert_eq!(store.remittances(&of_acme, None, 10).await.unwrap(), [summary.clone()]);
    let of_employer = gateway::storage::remittance::FileFilter { employer_fein: Some("431234567".into()), ..Default::default() };
    assert_eq!(store.remittances(&of_employer, None, 10).await.unwrap(), [summary.clone()]);
    let of_other = gateway::storage::remittance::FileFilter { employer_fein: Some("999999999".into()), ..of_acme.clone() };
    assert!(store.remittances(&of_other, None, 10).await.unwrap().is_empty());
    let later = gateway::storage::remittance::FileFilter { received_from: Some(date("2026-11-21")), ..Default::default() };
    assert!(store.remittances(&later, None, 10).await.unwrap().is_empty());
    let stored = store.remittance_lines_after(summary.remittance_id, 1, 10).await.unwrap();
    assert_eq!(stored, [line(2, "SUSPENSE", None), line(3, "APPLIED_BY_SSN", Some("OB-1"))]);
    let suspense = store.suspense_after(0, 10).await.unwrap();
    assert_eq!(
        suspense.iter().map(|s| (s.batch_id.as_str(), s.line, s.reason.as_str(), s.state.as_str())).collect::<Vec<_>>(),
        [("B-1", 2, "SSN_MISMATCH", "OPEN")]
    );
    // The two collected lines are pending payroll collections of OB-1 on the pay date.
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!((run.collections, run.pools, run.total), (2, 1, money("200.00")));
}

/// A file whose rows name an obligor or a case the registry does not hold is refused whole,
/// as the schema's foreign keys require (on SQLite the file writer checks them in bulk,
/// `storage/sqlite_references.rs`), and the same batch then commits once its lines are right.
/// A writer may answer a batch's failure late (SQLite's has the next batch on its way before
/// it hears), but after a failure neither backend writes another batch of the file or
/// commits it: nothing of it is kept.
async fn after_a_failed_batch_nothing_more_of_the_file_is_written_or_kept(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    let mut writer = store.begin_remittance(file_from_acme("B-1"), audit()).await.unwrap();
    writer.write_lines(vec![collected_line(1, Some("OB-1"), "12345678")].into()).await.expect("a good batch");
    // Collected from nobody: refused by the writer's own check, now or with the next call.
    let refused = writer.write_lines(vec![collected_line(2, None, "12345678")].into()).await;
    let after = writer.write_lines(vec![collected_line(3, Some("OB-1"), "12345678")].into()).await;
    let first_error = refused.as_ref().err().or(after.as_ref().err()).expect("the batch is refused").to_string();
    assert!(first_error.contains("collected without obligor"), "{first_error}");
    assert!(after.is_err(), "the batch after a failure is refused");
    assert!(writer.finish(applied_counts(3)).await.is_err(), "and so is the file's end");
    assert_eq!(store.remittance_by_batch("acme", "B-1").await.unwrap(), None);
    assert!(store.distribute("t", &plan_obligors, &audit()).await.unwrap().is_none(), "nothing of the file was kept");
}

/// A line collecting 100.00 paid on 2026-11-13 from `obligor` (none: a line the writer
/// must refuse) under `case`.
fn collected_line(number: u64, obligor: Option<&str>, case: &str) -> gateway::storage::remittance::LineToWrite {
    use gateway::storage::remittance::{LineEffects, LineToWrite, PayrollCollection, StoredLine};
    LineToWrite {
        record: StoredLine {
            line: number,
            status: "APPLIED".into(),
            employer_fein: Some("431234567".into()),
            case_number: Some(case.into()),
            ssn_last4: Some("6789".into()),
            amount: Some(Money::from_cents(100_00)),
            pay_date: Some(date("2026-11-13")),
            obligor_id: obligor.map(|obligor| ObligorId::parse(obligor).unwrap()),
            prenote: false,
            problems: vec![],
        },
        effects: LineEffects {
            collect: Some(PayrollCollection { case_number: Some(case.into()) }),
            suspense: None,
            termination_notice: false,
        },
    }
}

/// The counts of a file of `lines` lines, each applied and of 100.00.
fn applied_counts(lines: u64) -> gateway::storage::remittance::LineCounts {
    gateway::storage::remittance::LineCounts {
        line_count: lines,
        total: Money::from_cents(100_00 * i64::try_from(lines).unwrap()),
        applied: lines,
        applied_by_ssn: 0,
        suspense: 0,
        rejected: 0,
    }
}

async fn a_file_naming_what_the_registry_does_not_hold_is_refused_whole(backend: Backend) {
    use gateway::storage::remittance::LineBatch;

    let (_db, store) = seeded(backend).await;
    let remittance = || file_from_acme("B-1");
    let collected = |number: u64, obligor: &str, case: &str| collected_line(number, Some(obligor), case);
    let counts = applied_counts;
    // Keys vouched for at a generation the registry is no longer at (an index read before a
    // change) are looked up like any others.
    let generation = store.registry_generation().await.unwrap();
    let wrong_lines = [(collected(2, "OB-GONE", "12345678"), "OB-GONE"), (collected(2, "OB-1", "99999999"), "99999999")];
    for ((wrong, missing), vouched_at) in wrong_lines.iter().flat_map(|wrong| [(wrong, None), (wrong, Some(generation.wrapping_add(1)))]) {
        let mut writer = store.begin_remittance(remittance(), audit()).await.unwrap();
        let batch = LineBatch { lines: vec![collected(1, "OB-1", "12345678"), wrong.clone()], keys_registered_at: vouched_at };
        let written = match writer.write_lines(batch).await {
            Ok(()) => writer.finish(counts(2)).await.map(|_| ()),
            Err(error) => Err(error),
        };
        let error = written.expect_err("a line naming what the registry does not hold is refused");
        assert!(error.to_string().contains(missing), "the refusal names {missing} (vouched at {vouched_at:?}): {error}");
        assert_eq!(store.remittance_by_batch("acme", "B-1").await.unwrap(), None);
        assert!(store.distribute("t", &plan_obligors, &audit()).await.unwrap().is_none(), "nothing of the file was kept");
    }

    // Lines vouched for at the generation the registry is at are written as any others.
    let mut writer = store.begin_remittance(remittance(), audit()).await.unwrap();
    let batch = LineBatch { lines: vec![collected(1, "OB-1", "12345678")], keys_registered_at: Some(generation) };
    writer.write_lines(batch).await.unwrap();
    writer.finish(counts(1)).await.unwrap();
    let run = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!((run.collections, run.total), (1, money("100.00")));
    assert!(store.verify_ledger("t").await.unwrap().is_clean());

    // Keys vouched for at the generation the file began at are taken as found, not looked up
    // again. Shown with one the registry does not hold, vouched for wrongly (a bug upstream):
    // the file is kept, and `gateway verify` names the row.
    let mut writer = store.begin_remittance(file_from_acme("B-2"), audit()).await.unwrap();
    let batch = LineBatch { lines: vec![collected(1, "OB-GONE", "12345678")], keys_registered_at: Some(generation) };
    writer.write_lines(batch).await.unwrap();
    writer.finish(counts(1)).await.expect("taken as found");
    let report = store.verify_ledger("t").await.unwrap();
    let references = report.checks.iter().find(|check| check.name == "references_in_the_registry").unwrap();
    // The file's collection and its line name the obligor.
    assert_eq!(references.breach_count, 2, "{:?}", references.breaches);
    assert!(references.breaches.iter().any(|breach| breach.starts_with("collection ")), "{:?}", references.breaches);
    assert!(references.breaches.iter().any(|breach| breach.ends_with(" line 1")), "{:?}", references.breaches);
}

async fn audit_rows_commit_with_their_action_and_never_change(backend: Backend) {
    let (db, store) = seeded(backend).await;
    collect(&*store, "12345678", "250.00", "2026-11-13").await;
    // A run that rolls back takes its audit row with it; one that commits keeps it.
    store.distribute("t", &failing_planner, &audit_of("failed run")).await.unwrap_err();
    store.distribute("t", &plan_obligors, &audit_of("run")).await.unwrap().expect("a run");
    store.record_audit(&audit_of("refused call")).await.unwrap();
    let actions = audited_actions(&*store).await;
    assert!(!actions.contains(&"failed run".to_owned()), "{actions:?}");
    assert!(actions.contains(&"run".to_owned()) && actions.contains(&"refused call".to_owned()), "{actions:?}");

    let statements = [
        "UPDATE audit_log SET outcome = 'OK'",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor = 'someone else' WHERE action = 'run'",
    ];
    for statement in statements {
        let refused = match backend {
            Backend::Sqlite => {
                let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
                sqlx::query(statement).execute(&mut connection).await.is_err()
            }
            Backend::Postgres => {
                let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
                sqlx::query(statement).execute(&mut connection).await.is_err()
            }
        };
        assert!(refused, "`{statement}` must be refused");
    }
    if let Backend::Postgres = backend {
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        assert!(sqlx::query("TRUNCATE audit_log").execute(&mut connection).await.is_err(), "TRUNCATE must be refused");
    }
    assert_eq!(audited_actions(&*store).await, actions, "nothing changed");
}

async fn api_keys_are_kept_as_hashes_and_revoked_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let key = ApiKeyRecord {
        key_id: "00112233aabbccdd".to_owned(),
        name: "acme-hr".to_owned(),
        role: gateway::domain::access::Role::Employer,
        feins: vec![gateway::domain::Fein::parse("43-1234567").unwrap(), gateway::domain::Fein::parse("431234568").unwrap()],
        secret_sha256: "ab".repeat(32),
        client_cert_sha256: Some("cd".repeat(32)),
        created_at: "2026-11-20T12:00:00Z".to_owned(),
        revoked_at: None,
    };
    assert_eq!(store.create_key(&key, &audit_of("create")).await.unwrap(), KeyCreation::Created);
    assert_eq!(store.key(&key.key_id).await.unwrap(), Some(key.clone()));
    assert_eq!(store.key_by_client_cert(&"cd".repeat(32)).await.unwrap(), Some(key.clone()));
    assert_eq!(store.keys().await.unwrap(), vec![key.clone()]);
    // A name is one tenant: a vendor key may not take an employer's name.
    let vendor = ApiKeyRecord {
        key_id: "ffeeddccbbaa9988".to_owned(),
        role: gateway::domain::access::Role::Vendor,
        feins: Vec::new(),
        client_cert_sha256: None,
        ..key.clone()
    };
    assert_eq!(
        store.create_key(&vendor, &audit_of("clash")).await.unwrap(),
        KeyCreation::NameHasOtherRole(gateway::domain::access::Role::Employer)
    );
    assert_eq!(store.key(&vendor.key_id).await.unwrap(), None);

    // Employer keys of one name read the same files, so they share their FEINs.
    let narrower =
        ApiKeyRecord { key_id: "1122334455667788".to_owned(), feins: vec![key.feins[0].clone()], client_cert_sha256: None, ..key.clone() };
    assert_eq!(store.create_key(&narrower, &audit_of("narrower")).await.unwrap(), KeyCreation::NameHasOtherFeins);

    assert!(store.revoke_key(&key.key_id, "2026-11-21T00:00:00Z", &audit_of("revoke")).await.unwrap());
    assert!(!store.revoke_key(&key.key_id, "2026-11-22T00:00:00Z", &audit_of("revoke again")).await.unwrap());
    assert_eq!(store.key(&key.key_id).await.unwrap().unwrap().revoked_at.as_deref(), Some("2026-11-21T00:00:00Z"));
    assert_eq!(audited_actions(&*store).await, ["create", "revoke"], "refused changes write no row of their own");
}

/// A run fails in its second chunk (as a crash there would stop it): the first chunk's
/// obligors are distributed whole and conserved, nothing of the second is written, and the
/// next run distributes exactly what is left.
async fn a_failed_chunk_leaves_whole_chunks_and_the_next_run_finishes_the_rest(backend: Backend) {
    let (_db, store) = many_obligors_with_a_collection_each(backend).await;
    // Fails every chunk but the first, by what it plans (not by how often it is called: a
    // backend may plan a chunk ahead, and plan it again when what it read has changed).
    fn fails_after_the_first_chunk(inputs: Vec<ObligorInput>) -> Result<Vec<ObligorPlan>, ConservationError> {
        match inputs.first() {
            Some(first) if first.obligor_id.as_str() != "OB00000" => failing_planner(inputs),
            _ => plan_obligors(inputs),
        }
    }
    let error = store.distribute("t", &fails_after_the_first_chunk, &audit()).await.unwrap_err();
    assert!(matches!(error, StoreError::Conservation(_)), "{error}");

    let allocations = all_allocations(&*store).await;
    // One order per obligor (unapplied credit has no order).
    let orders: std::collections::BTreeSet<&str> = allocations.iter().map(|a| a.0.as_str()).filter(|o| !o.is_empty()).collect();
    assert_eq!(orders.len(), 500, "exactly the first chunk's obligors");
    let total: Money = allocations.iter().map(|a| a.3).sum();
    assert_eq!(total, Money::from_cents(500 * 150_00), "each of them whole: 150.00 in, 150.00 allocated");

    let rest = store.distribute("t", &plan_obligors, &audit()).await.unwrap().expect("the rest is still pending");
    assert_eq!((rest.obligors, rest.collections), ((MANY_OBLIGORS - 500) as u64, (MANY_OBLIGORS - 500) as u64));
    let total: Money = all_allocations(&*store).await.iter().map(|a| a.3).sum();
    assert_eq!(total, Money::from_cents(MANY_OBLIGORS as i64 * 150_00), "every collection once");
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None);
}

/// A collection recorded while a run is distributing commits between two of the run's
/// chunks: on SQLite's single writer it waits for one chunk, not for the whole run. It is for
/// an obligor of a later chunk, which SQLite may have read ahead before it came: that chunk
/// must see it (distributing it, or leaving it pending for the next run), never write a plan
/// made without it.
async fn intake_waits_at_most_one_chunk_behind_a_distribution_run(backend: Backend) {
    let (_db, store) = many_obligors_with_a_collection_each(backend).await;
    let events = Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
    let (started, mut first_chunk_planned) = tokio::sync::mpsc::unbounded_channel::<()>();
    let intake = {
        let (store, events) = (store.clone(), events.clone());
        tokio::spawn(async move {
            first_chunk_planned.recv().await;
            // OB00600: the first chunk is OB00000–OB00499.
            collect(&*store, "10000600", "25.00", "2026-11-14").await;
            events.lock().unwrap().push("intake");
        })
    };
    let planner: &'static _ = {
        let events = events.clone();
        Box::leak(Box::new(move |inputs: Vec<ObligorInput>| {
            events.lock().unwrap().push("chunk");
            let _ = started.send(());
            plan_obligors(inputs)
        }))
    };
    let run = store.distribute("t", planner, &audit()).await.unwrap().expect("a run");
    intake.await.unwrap();
    let events = events.lock().unwrap().clone();
    let intake_at = events.iter().position(|e| *e == "intake").expect("the intake finished");
    // The first chunk is 500 obligors, the next sized from it (one collection each: the
    // rest). Plans made, counting any made ahead or made again.
    let plans_made = events.iter().filter(|e| **e == "chunk").count();
    assert!(plans_made >= 2, "{events:?}");
    assert!(intake_at < plans_made, "the intake committed between the run's chunks, not after the run: {events:?}");
    // Every collection once: the one that came in during the run by its chunk or, if that
    // chunk had begun, by the next run.
    let next = store.distribute("t", &plan_obligors, &audit()).await.unwrap().map_or(0, |run| run.collections);
    assert_eq!(run.collections + next, MANY_OBLIGORS as u64 + 1, "{events:?}");
    assert!(run.collections >= MANY_OBLIGORS as u64);
    let total: Money = all_allocations(&*store).await.iter().map(|a| a.3).sum();
    assert_eq!(total, Money::from_cents(MANY_OBLIGORS as i64 * 150_00 + 25_00));
}

fn sum_of(allocations: &[(String, Bucket, Option<String>, Money)], order: &str, bucket: Bucket, month: Option<&str>) -> Money {
    allocations.iter().filter(|a| a.0 == order && a.1 == bucket && a.2.as_deref() == month).map(|a| a.3).sum()
}

async fn an_end_after_the_money_is_corrected_once_and_withdrawn(backend: Backend) {
    use gateway::domain::lifecycle::{EndReason, EndRefusal};
    use gateway::storage::ends::{EndOutcome, NewEnd, WithdrawOutcome};
    let (_db, store) = seeded(backend).await;
    // November and December each pay A's 300.00 and B's 200.00 in full.
    collect(&*store, "12345678", "500.00", "2026-11-15").await;
    collect(&*store, "12345678", "500.00", "2026-12-15").await;
    store.distribute("2026-12-20T12:00:00Z", &plan_obligors, &audit()).await.unwrap().expect("a run");

    let end = |date: &str| NewEnd {
        order_id: OrderId::parse("A").unwrap(),
        reason: EndReason::ChildMarried,
        end_date: self::date(date),
        recorded_by: "clerk".into(),
        recorded_at: "2026-12-21T09:00:00Z".into(),
    };
    let EndOutcome::Recorded(recorded) = store.record_end(&end("2026-11-20"), &audit_of("RecordOrderEnd")).await.unwrap() else {
        panic!("the end is recorded")
    };
    assert_eq!((recorded.corrected, recorded.corrected_pools, recorded.reason), (money("300.00"), 1, EndReason::ChildMarried));
    let allocations = all_allocations(&*store).await;
    assert_eq!(sum_of(&allocations, "A", Bucket::Current, Some("2026-12")), Money::ZERO);
    assert_eq!(sum_of(&allocations, "", Bucket::Correction, None), money("300.00"));
    assert_eq!(
        store.record_end(&end("2026-11-10"), &audit()).await.unwrap(),
        EndOutcome::Refused(EndRefusal::AlreadyEnded(date("2026-11-20"))),
        "one end in force at a time"
    );

    // The next run applies the correction pool in December: B's current is paid, so arrears
    // as of December (A 100.00, B 300.00) share the 300.00 in proportion.
    let run = store.distribute("2026-12-22T12:00:00Z", &plan_obligors, &audit()).await.unwrap().expect("a run");
    assert_eq!(
        (run.total, run.corrections, run.arrears, run.collections, run.pools),
        (Money::ZERO, money("300.00"), money("300.00"), 0, 0)
    );
    let allocations = all_allocations(&*store).await;
    assert_eq!(
        (sum_of(&allocations, "A", Bucket::Arrears, None), sum_of(&allocations, "B", Bucket::Arrears, None)),
        (money("75.00"), money("225.00"))
    );
    assert_eq!(sum_of(&allocations, "", Bucket::Correction, None), Money::ZERO);
    assert_eq!(store.distribute("t", &plan_obligors, &audit()).await.unwrap(), None, "nothing is pending");

    let WithdrawOutcome::Withdrawn(withdrawn) =
        store.withdraw_end(&OrderId::parse("A").unwrap(), "clerk", "2026-12-23T09:00:00Z", &audit_of("WithdrawOrderEnd")).await.unwrap()
    else {
        panic!("the end is withdrawn")
    };
    assert_eq!((withdrawn.end_id, withdrawn.withdrawn_by.as_deref()), (recorded.end_id, Some("clerk")));
    let stored = store.orders_after(None, 10).await.unwrap();
    assert_eq!(stored[0].ledger.order().end_date, None, "the later months are due again");
    assert_eq!(
        store.withdraw_end(&OrderId::parse("A").unwrap(), "clerk", "t", &audit()).await.unwrap(),
        WithdrawOutcome::NothingToWithdraw
    );
    let ends = store.ends_of_order(&OrderId::parse("A").unwrap()).await.unwrap();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].withdrawn_at.as_deref(), Some("2026-12-23T09:00:00Z"));
    let actions = audited_actions(&*store).await;
    assert!(actions.contains(&"RecordOrderEnd".to_owned()) && actions.contains(&"WithdrawOrderEnd".to_owned()), "{actions:?}");

    // The explanation of A's order sees the correction, linked to the end.
    let facts = store.order_facts(&OrderId::parse("A").unwrap()).await.unwrap().unwrap();
    assert!(facts.entries.iter().any(|e| e.end_id == Some(recorded.end_id) && e.amount == money("-300.00")));
    assert_eq!(facts.ends.len(), 1);
}

async fn a_registry_end_moved_earlier_is_corrected_and_a_later_one_is_not(backend: Backend) {
    let (_db, store) = seeded(backend).await;
    for date in ["2026-11-15", "2026-12-15", "2027-01-15"] {
        collect(&*store, "22345678", "150.00", date).await;
    }
    store.distribute("2027-01-20T12:00:00Z", &plan_obligors, &audit()).await.unwrap().expect("a run");
    // The spec registry with an end_date column, set for C only.
    let with_end = |end: &str| {
        let mut lines: Vec<String> = SPEC_REGISTRY.lines().map(|line| format!("{line},")).collect();
        lines[0] = lines[0].replace("employer_fein,", "employer_fein,end_date");
        let c = lines.iter_mut().find(|line| line.contains(",C,")).unwrap();
        c.push_str(end);
        lines.join("\n") + "\n"
    };
    let registry = with_end("2026-12-31");
    assert!(matches!(store.import_registry(&entries(&registry), &audit()).await.unwrap(), RegistryImport::Applied(_)));
    let allocations = all_allocations(&*store).await;
    assert_eq!(sum_of(&allocations, "C", Bucket::Current, Some("2027-01")), Money::ZERO);
    assert_eq!(sum_of(&allocations, "", Bucket::Correction, None), money("150.00"));
    // A later registry end moves nothing: the months it makes due again keep what moved.
    let later = with_end("2027-01-31");
    assert!(matches!(store.import_registry(&entries(&later), &audit()).await.unwrap(), RegistryImport::Applied(_)));
    assert_eq!(sum_of(&all_allocations(&*store).await, "", Bucket::Correction, None), money("150.00"));
    let ends = store.ends_of_order(&OrderId::parse("C").unwrap()).await.unwrap();
    assert_eq!(
        ends.iter().map(|e| (e.end_date.to_string(), e.withdrawn_at.is_some())).collect::<Vec<_>>(),
        [("2026-12-31".to_owned(), true), ("2027-01-31".to_owned(), false)]
    );
    assert_eq!(ends[0].corrected, money("150.00"));
}

async fn unapplied_credit_moves_within_its_pools_and_never_below_zero(backend: Backend) {
    use gateway::domain::credit::{CreditRefusal, CreditUse};
    use gateway::domain::YearMonth;
    use gateway::storage::credit::{CreditMove, CreditOutcome};
    let (_db, store) = seeded(backend).await;
    // OB-2's money before its order starts is all credit.
    let collection = collect(&*store, "22345678", "1000.00", "2026-10-15").await;
    store.distribute("2026-11-20T12:00:00Z", &plan_obligors, &audit()).await.unwrap().expect("a run");
    let balances = store.unapplied_credit(None, None, 10).await.unwrap();
    assert_eq!(balances.iter().map(|b| (b.obligor_id.to_string(), b.credit)).collect::<Vec<_>>(), [("OB-2".to_owned(), money("1000.00"))]);

    let request = |amount: &str, target: CreditUse| CreditMove {
        obligor_id: ObligorId::parse("OB-2").unwrap(),
        amount: money(amount),
        order_id: (target != CreditUse::Refund).then(|| OrderId::parse("C").unwrap()),
        reference: (target == CreditUse::Refund).then(|| "CHK-1".to_owned()),
        target,
        this_month: YearMonth::parse("2026-11").unwrap(),
        recorded_by: "clerk".into(),
        recorded_at: "2026-11-20T12:00:00Z".into(),
    };
    let CreditOutcome::Done(refund) = store.move_credit(&request("400.00", CreditUse::Refund), &audit_of("RefundCredit")).await.unwrap()
    else {
        panic!("refunded")
    };
    assert_eq!((refund.kind.as_str(), refund.credit_left), ("REFUND", money("600.00")));
    let november = CreditUse::Current(YearMonth::parse("2026-11").unwrap());
    assert_eq!(
        store.move_credit(&request("150.01", november.clone()), &audit()).await.unwrap(),
        CreditOutcome::Refused(CreditRefusal::MoreThanDue { due: money("150.00") })
    );
    let CreditOutcome::Done(applied) = store.move_credit(&request("150.00", november), &audit_of("ApplyCredit")).await.unwrap() else {
        panic!("applied")
    };
    assert_eq!(applied.credit_left, money("450.00"));
    assert_eq!(
        store.move_credit(&request("450.01", CreditUse::Refund), &audit()).await.unwrap(),
        CreditOutcome::Refused(CreditRefusal::MoreThanLeft { left: money("450.00") })
    );
    let stranger = CreditMove { obligor_id: ObligorId::parse("OB-9").unwrap(), ..request("1.00", CreditUse::Refund) };
    assert_eq!(store.move_credit(&stranger, &audit()).await.unwrap(), CreditOutcome::UnknownObligor);
    let not_theirs = CreditMove { order_id: Some(OrderId::parse("A").unwrap()), ..request("1.00", CreditUse::Arrears) };
    assert_eq!(store.move_credit(&not_theirs, &audit()).await.unwrap(), CreditOutcome::UnknownOrder);

    // The pool keeps all its money: the moves are rows within it.
    let facts = store.collection_facts(collection).await.unwrap().unwrap();
    let pool = facts.pool.unwrap();
    assert_eq!(pool.entries.iter().map(|e| e.amount).sum::<Money>(), money("1000.00"));
    assert_eq!(pool.entries.iter().filter(|e| e.bucket == Bucket::Refunded).map(|e| e.amount).sum::<Money>(), money("400.00"));
    assert_eq!(store.unapplied_credit(Some(&ObligorId::parse("OB-2").unwrap()), None, 10).await.unwrap()[0].credit, money("450.00"));
    let actions = audited_actions(&*store).await;
    assert!(actions.contains(&"RefundCredit".to_owned()) && actions.contains(&"ApplyCredit".to_owned()), "{actions:?}");
}

/// A real PostgreSQL deadlock between two transactions is the kind of error the server runs
/// again (`app::retry`): the database undid one of them whole.
#[tokio::test]
async fn a_postgres_deadlock_is_recognised_as_a_transient_conflict() {
    use sqlx::Connection;
    let db = TestDb::new(Backend::Postgres).await;
    let mut setup = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE crossing (id INT PRIMARY KEY, n INT NOT NULL)").execute(&mut setup).await.unwrap();
    sqlx::query("INSERT INTO crossing VALUES (1, 0), (2, 0)").execute(&mut setup).await.unwrap();

    let (mut first, mut second) = (sqlx::PgConnection::connect(&db.url).await.unwrap(), sqlx::PgConnection::connect(&db.url).await.unwrap());
    let mut one = first.begin().await.unwrap();
    let mut two = second.begin().await.unwrap();
    sqlx::query("UPDATE crossing SET n = n + 1 WHERE id = 1").execute(&mut *one).await.unwrap();
    sqlx::query("UPDATE crossing SET n = n + 1 WHERE id = 2").execute(&mut *two).await.unwrap();
    // Each now wants the other's row: PostgreSQL undoes one of them (after deadlock_timeout).
    let (a, b) = tokio::join!(
        sqlx::query("UPDATE crossing SET n = n + 1 WHERE id = 2").execute(&mut *one),
        sqlx::query("UPDATE crossing SET n = n + 1 WHERE id = 1").execute(&mut *two)
    );
    let errors: Vec<StoreError> = [a, b].into_iter().filter_map(Result::err).map(StoreError::from).collect();
    assert_eq!(errors.len(), 1, "one of the two is undone: {errors:?}");
    assert!(errors[0].is_transient_conflict(), "{:?}", errors[0]);
    assert!(!StoreError::Conflict("a replica got there first".into()).is_transient_conflict());
}
