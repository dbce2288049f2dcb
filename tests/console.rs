//! The web console in a real headless Chromium, driven over WebDriver (`chromedriver`): what
//! a clerk, an employer and a vendor do, the security of sessions and forms, and axe-core's
//! accessibility check on every page. Each page checked is saved at 1280×800 as
//! `target/console-screenshots/<page>.png`; `UPDATE_CONSOLE_SCREENSHOTS=1` saves them as the
//! documentation's `docs/console/<page>.png` instead.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Backend, TestApp, SPEC_REGISTRY};
use fantoccini::{Client, ClientBuilder, Locator};
use gateway::domain::access::Role;
use gateway::grpc::proto;
use serde_json::{json, Value};

/// The browser tests run one at a time: each starts its own Chromium, and two cores do not
/// run several well.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// axe-core 4.10.2 (MPL-2.0, `tests/console/axe-LICENSE.txt`), injected into each page.
const AXE: &str = include_str!("console/axe.min.js");

struct Browser {
    client: Client,
    driver: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    async fn open(console: std::net::SocketAddr) -> Browser {
        Browser::launch(console, true).await
    }

    /// A browser whose pages run no script: the console must work without one.
    async fn open_without_javascript(console: std::net::SocketAddr) -> Browser {
        Browser::launch(console, false).await
    }

    async fn launch(console: std::net::SocketAddr, javascript: bool) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver), as .ci/run does");
        let mut capabilities = serde_json::Map::new();
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800", "--hide-scrollbars"]
        });
        if let Some(binary) = binary {
            options["binary"] = json!(binary);
        }
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        capabilities.insert("goog:chromeOptions".into(), options);
        let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let mut last_error = None;
        for _ in 0..100 {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => {
                    client.set_window_size(1280, 800).await.unwrap();
                    return Browser { client, driver, base: format!("http://{console}") };
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}");
    }

    async fn go(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks what loads a new page (a link, a form's button) and waits for that page.
    async fn click(&self, css: &str) {
        self.client.execute("window.stillTheOldPage = true;", vec![]).await.unwrap();
        self.click_in_page(css).await;
        for _ in 0..200 {
            let old = self.client.execute("return document.readyState !== 'complete' || window.stillTheOldPage === true;", vec![]).await;
            if old.ok() == Some(json!(false)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clicking {css} loaded no new page");
    }

    /// Clicks what changes the page without loading another.
    async fn click_in_page(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    }

    /// The text of the page's main part.
    async fn main_text(&self) -> String {
        self.client.wait().for_element(Locator::Css("main")).await.unwrap().text().await.unwrap()
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn sign_in(&self, token: &str) {
        self.go("/sign-in").await;
        self.fill("#field-key", token).await;
        self.click("main button[type=submit]").await;
        self.client.wait().for_element(Locator::Css("header.top")).await.unwrap();
    }

    /// Runs axe-core on the page: no serious or critical violation of WCAG 2.1 A/AA. Then
    /// saves the page as `docs/console/<name>.png`.
    async fn check_page(&self, name: &str) {
        self.client.execute(AXE, vec![]).await.unwrap();
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
              .then(result => done(result.violations
                  .filter(v => v.impact === 'serious' || v.impact === 'critical')
                  .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(error => done(['axe failed: ' + error]));";
        let violations = self.client.execute_async(script, vec![]).await.unwrap();
        assert_eq!(violations, json!([]), "axe-core on the {name} page");
        let png = self.client.screenshot().await.unwrap();
        let documented = std::env::var_os("UPDATE_CONSOLE_SCREENSHOTS").is_some_and(|v| v == "1");
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(if documented { "docs/console" } else { "target/console-screenshots" });
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// chromedriver (and so Chromium) ends with the test, even one that failed.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn console_app() -> TestApp {
    // Today's date, fixed for the test: the dashboard's days and the files' instants agree as
    // in use, and a test running over midnight still sees one day.
    let today = today();
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| {
        config.console_listen = Some("127.0.0.1:0".parse().unwrap());
        config.clock = std::sync::Arc::new(gateway::app::FixedClock(today));
    })
    .await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    let mut registry = proto::registry_service_client::RegistryServiceClient::new(app.channel.clone());
    assert!(registry.import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    app
}

fn today() -> chrono::NaiveDate {
    use gateway::app::Clock as _;
    static TODAY: std::sync::OnceLock<chrono::NaiveDate> = std::sync::OnceLock::new();
    *TODAY.get_or_init(|| gateway::app::SystemClock.today())
}

fn console_address(app: &TestApp) -> std::net::SocketAddr {
    app.console_address.expect("the console is served")
}

/// Sends a CSV file over gRPC as `token`'s sender.
async fn submit_csv(app: &TestApp, token: &str, batch_id: &str, csv: &str) -> proto::RemittanceAcknowledgment {
    let channel = common::authed(&app.raw, token);
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1000);
    let mut client = proto::remittance_service_client::RemittanceServiceClient::new(channel);
    client.submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap()
}

// OB-1 (SSN 123-45-6789) has cases 12345678 (order A,
// 300.00 a month) and 12345679 (order B); OB-2 (223-45-6789) has case 22345678 (order C).
const VENDOR_FILE: &str = "\
employer_fein,employer_name,case_number,employee_ssn,employee_last_name,pay_date,amount
43-1234567,Acme,12345678,123-45-6789,Smith,2026-11-13,400.00
43-1234567,Acme,99999999,423-45-6789,Nobody,2026-11-13,150.00
";

#[tokio::test]
async fn a_clerk_resolves_a_suspense_item_runs_distribution_and_sees_the_money_in_the_statement() {
    let _one = ONE_BROWSER.lock().await;
    let app = console_app().await;
    let vendor = common::make_key(&app.app, Role::Vendor, "acme-payroll", &[]).await;
    let ack = submit_csv(&app, &vendor, "ACME-1", VENDOR_FILE).await;
    assert_eq!((ack.applied, ack.suspense), (1, 1));
    let left = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated\n\
                43-1234567,12345679,123-45-6789,Smith,2026-11-13,0,Y\n";
    submit_csv(&app, &vendor, "ACME-2", left).await;
    let clerk = common::make_key(&app.app, Role::BackOffice, "clerk-jones", &[]).await;
    let browser = Browser::open(console_address(&app)).await;

    browser.go("/sign-in").await;
    browser.check_page("sign-in").await;
    browser.sign_in(&clerk).await;
    assert_eq!(browser.path().await, "/dashboard");
    let dashboard = browser.main_text().await;
    assert!(dashboard.contains("In suspense") && dashboard.contains("$150.00"), "{dashboard}");
    assert!(dashboard.contains("acme-payroll"), "today's files by sender: {dashboard}");
    browser.check_page("dashboard").await;

    // The queue shows the item with its SSN masked; the clerk opens it and resolves it to
    // case 22345678 (OB-2, order C).
    browser.click("header nav a[href='/suspense']").await;
    let queue = browser.main_text().await;
    assert!(queue.contains("OBLIGOR_NOT_IDENTIFIED") && queue.contains("$150.00"), "{queue}");
    assert!(queue.contains("•••-••-6789") && !queue.contains("423-45-6789"), "the SSN is masked: {queue}");
    browser.check_page("suspense").await;
    browser.click("table.keyboard-list tbody tr a").await;
    browser.check_page("suspense-item").await;
    // The clerk looks up the obligors whose SSN ends in the line's last four (OB-1 and OB-2
    // do), then comes back to the item.
    browser.click("a[href='/obligors?ssn_last4=6789']").await;
    assert!(browser.main_text().await.contains("OB-2"));
    browser.client.back().await.unwrap();
    // A wrong case number is said beside the field, and what was typed stays.
    browser.fill("#field-target", "1234").await;
    browser.click("form[action$='/resolve'] button").await;
    let error = browser.client.find(Locator::Css("#field-target-error")).await.unwrap().text().await.unwrap();
    assert!(error.contains("obligor 1234 is not in the registry"), "{error}");
    assert_eq!(browser.client.find(Locator::Css("#field-target")).await.unwrap().prop("value").await.unwrap().as_deref(), Some("1234"));
    browser.fill("#field-target", "22345678").await;
    browser.click("form[action$='/resolve'] button").await;
    let resolved = browser.main_text().await;
    assert!(resolved.contains("Resolved: collection") && resolved.contains("RESOLVED"), "{resolved}");

    // Distribution, then where the money went, then order C's statement.
    browser.click("header nav a[href='/distribution']").await;
    browser.check_page("distribution").await;
    browser.click("main form button").await;
    let run = browser.client.find(Locator::Css("section.ack")).await.unwrap().text().await.unwrap();
    assert!(run.contains(" done") && run.contains("$550.00"), "both collections distributed: {run}");
    browser.check_page("distribution-run").await;
    browser.go("/suspense?state=RESOLVED").await;
    browser.click("table.keyboard-list tbody tr a").await;
    browser.click("a[href^='/collections/']").await;
    let collection = browser.main_text().await;
    assert!(collection.contains("Distributed in pool") && collection.contains("$150.00"), "{collection}");
    browser.check_page("collection").await;
    browser.click("a[href='/orders/C']").await;
    let statement = browser.main_text().await;
    assert!(statement.contains("Support for 2026-11 fell due"), "{statement}");
    assert!(statement.contains("-$150.00"), "the money is on order C's statement: {statement}");
    browser.check_page("order-statement").await;

    // The obligor found by the start of its name, in any case; its order; a review request
    // and an end recorded on it.
    browser.click("header nav a[href='/obligors']").await;
    browser.check_page("obligors-empty").await;
    browser.fill("#field-last_name", "do").await;
    browser.click("form[role=search] button").await;
    let found = browser.main_text().await;
    assert!(found.contains("OB-2") && found.contains("Doe, Jane") && found.contains("•••-••-6789") && !found.contains("OB-1"), "{found}");
    browser.check_page("obligors").await;
    browser.click("main table a[href='/orders/C']").await;
    let today = today();
    browser.client.execute(&format!("document.getElementById('field-requested_on').value = '{today}'"), vec![]).await.unwrap();
    browser.fill("#field-reason", "new job").await;
    browser.click("form[action$='/reviews'] button").await;
    let reviewed = browser.main_text().await;
    assert!(reviewed.contains("Review request") && reviewed.contains("recorded") && reviewed.contains("new job"), "{reviewed}");
    browser.client.execute(&format!("document.getElementById('field-end_date').value = '{today}'"), vec![]).await.unwrap();
    browser.click("form[action$='/end'] button").await;
    let ended = browser.main_text().await;
    assert!(ended.contains(&format!("End recorded: from {today} on")), "{ended}");
    assert!(ended.contains(&format!("End recorded (CHILD_MARRIED, on {today})")), "the end is on the statement: {ended}");
    browser.check_page("order").await;
    // The termination notice of the second file, marked handled.
    browser.click("header nav a[href='/notices']").await;
    let notices = browser.main_text().await;
    assert!(notices.contains("ACME-2") && notices.contains("12345679"), "{notices}");
    browser.check_page("notices").await;
    browser.click("form[action$='/handled'] button").await;
    assert_eq!(browser.path().await, "/notices", "answered by a redirect: a reload posts nothing");
    let handled = browser.main_text().await;
    assert!(handled.contains("ACME-2") && handled.contains("clerk-jones"), "now among the handled, with who handled it: {handled}");
    browser.click("header nav a[href='/projected-ends']").await;
    assert!(browser.main_text().await.contains("No order is past its projected end"));
    browser.check_page("projected-ends").await;

    // The files, one file's lines, and the exports.
    browser.click("header nav a[href='/files']").await;
    browser.check_page("files").await;
    // Newest first; a click on the Batch header sorts the page's rows by it, both ways.
    let first_batch = || async { browser.client.find(Locator::Css("main table tbody tr td:nth-child(3)")).await.unwrap().text().await.unwrap() };
    assert_eq!(first_batch().await, "ACME-2");
    browser.click_in_page("main table thead th:nth-child(3) button").await;
    assert_eq!(first_batch().await, "ACME-1");
    browser.click_in_page("main table thead th:nth-child(3) button").await;
    assert_eq!(first_batch().await, "ACME-2");
    browser.click("main table a[href='/files/acme-payroll/ACME-1']").await;
    let file = browser.main_text().await;
    assert!(file.contains("Accepted") && file.contains("CASE_NUMBER_UNKNOWN"), "{file}");
    browser.check_page("file").await;
    browser.click("header nav a[href='/exports']").await;
    browser.check_page("exports").await;
    let audit: Value = browser
        .client
        .execute_async("const done = arguments[0]; fetch('/exports/audit').then(r => r.text()).then(done);", vec![])
        .await
        .unwrap();
    let audit = audit.as_str().unwrap();
    for action in ["ConsoleSignIn", "ResolveSuspenseItem", "RunDistribution", "ExplainOrder", "SearchObligors", "RequestOrderReview", "RecordOrderEnd", "MarkTerminationNoticeHandled"] {
        assert!(audit.lines().any(|l| l.contains("clerk-jones") && l.contains(action) && l.ends_with(",OK")), "{action} audited: {audit}");
    }
    browser.close().await;
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_employer_uploads_a_csv_keys_in_lines_and_sees_its_acknowledgments() {
    let _one = ONE_BROWSER.lock().await;
    let app = console_app().await;
    let employer = common::make_key(&app.app, Role::Employer, "acme-hr", &["43-1234567"]).await;
    let browser = Browser::open(console_address(&app)).await;
    browser.sign_in(&employer).await;
    assert_eq!(browser.path().await, "/files");
    assert!(browser.main_text().await.contains("You have not sent a file yet"));
    browser.check_page("employer-files-empty").await;

    browser.click("header nav a[href='/upload']").await;
    browser.check_page("upload").await;
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("november.csv");
    std::fs::write(&path, VENDOR_FILE).unwrap();
    browser.fill("#field-batch_id", "HR-2026-11").await;
    browser.client.find(Locator::Css("#field-file")).await.unwrap().send_keys(path.to_str().unwrap()).await.unwrap();
    browser.click_in_page("#upload button[type=submit]").await;
    browser.client.wait().for_element(Locator::Css("#ack-title")).await.unwrap();
    let ack = browser.main_text().await;
    assert!(ack.contains("Accepted") && ack.contains("$550.00") && ack.contains("CASE_NUMBER_UNKNOWN"), "{ack}");
    browser.check_page("upload-acknowledgment").await;

    // The same batch id again with other lines is refused beside the field, what was typed kept.
    browser.click("header nav a[href='/key-in']").await;
    browser.check_page("key-in").await;
    browser.fill("#field-batch_id", "HR-2026-11").await;
    browser.fill("#field-employer_fein", "43-1234567").await;
    browser.fill("input[name='lines[0].case_number']", "12345679").await;
    browser.fill("input[name='lines[0].employee_ssn']", "123-45-6789").await;
    browser.fill("input[name='lines[0].employee_last_name']", "Smith").await;
    browser.fill("input[name='lines[0].amount']", "75.00").await;
    browser.client.execute("document.querySelector(\"input[name='lines[0].pay_date']\").value = '2026-11-13'", vec![]).await.unwrap();
    browser.click("main form button[type=submit]").await;
    let refused = browser.client.find(Locator::Css("#field-batch_id-error")).await.unwrap().text().await.unwrap();
    assert!(refused.contains("already used"), "{refused}");
    let kept = browser.client.find(Locator::Css("input[name='lines[0].amount']")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("75.00"), "the form keeps what was typed");
    browser.fill("#field-batch_id", "HR-2026-11-B").await;
    browser.click_in_page("input[name='lines[0].terminated']").await;
    browser.click("main form button[type=submit]").await;
    let keyed = browser.main_text().await;
    assert!(keyed.contains("Accepted") && keyed.contains("$75.00"), "{keyed}");
    let emptied = browser.client.find(Locator::Css("input[name='lines[0].employee_ssn']")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(emptied.as_deref(), Some(""), "the SSNs typed are not shown again");

    // The employee it said left is among its termination notices, without the agency's ids.
    browser.click("header nav a[href='/notices']").await;
    let notices = browser.main_text().await;
    assert!(notices.contains("HR-2026-11-B") && notices.contains("12345679") && notices.contains("not yet"), "{notices}");
    assert!(!notices.contains("Mark handled") && !notices.contains("OB-1"), "{notices}");
    browser.check_page("employer-notices").await;

    browser.click("header nav a[href='/files']").await;
    let history = browser.main_text().await;
    assert!(history.contains("HR-2026-11") && history.contains("HR-2026-11-B"), "{history}");
    browser.check_page("employer-files").await;
    // The back office's pages are not the employer's: the same refusal as over gRPC.
    browser.go("/suspense").await;
    assert!(browser.main_text().await.contains("may not call ListSuspenseItems"));
    browser.close().await;
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_vendor_sees_only_its_own_files() {
    let _one = ONE_BROWSER.lock().await;
    let app = console_app().await;
    let acme = common::make_key(&app.app, Role::Vendor, "acme-payroll", &[]).await;
    let other = common::make_key(&app.app, Role::Vendor, "other-payroll", &[]).await;
    submit_csv(&app, &acme, "ACME-1", VENDOR_FILE).await;
    submit_csv(&app, &other, "OTHER-1", &VENDOR_FILE.replace("400.00", "401.00")).await;
    let browser = Browser::open(console_address(&app)).await;
    browser.sign_in(&acme).await;
    let files = browser.main_text().await;
    assert!(files.contains("ACME-1") && !files.contains("OTHER-1"), "{files}");
    browser.go("/files/other-payroll/OTHER-1").await;
    let refused = browser.main_text().await;
    assert!(refused.contains("Not found") && !refused.contains("401.00"), "another sender's file is as if it did not exist: {refused}");
    browser.go("/files/acme-payroll/ACME-1").await;
    assert!(browser.main_text().await.contains("Accepted"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_sign_out_ends_the_session_and_failed_sign_ins_are_limited() {
    let _one = ONE_BROWSER.lock().await;
    let app = console_app().await;
    let clerk = common::make_key(&app.app, Role::BackOffice, "clerk-jones", &[]).await;
    let site = common::make_key(&app.app, Role::PaymentSite, "payment-site-2", &[]).await;
    let browser = Browser::open(console_address(&app)).await;

    // A payment-site key may not sign in.
    browser.go("/sign-in").await;
    browser.fill("#field-key", &site).await;
    browser.click("main button[type=submit]").await;
    assert!(browser.main_text().await.contains("cannot sign in to the console"));

    browser.sign_in(&clerk).await;
    let refused: Value = browser
        .client
        .execute_async(
            "const done = arguments[0]; fetch('/distribution', { method: 'POST', body: new URLSearchParams({ csrf: 'forged' }) }).then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(403));
    // Every form that changes something, with no token or another one: refused.
    let routes = [
        "/distribution",
        "/suspense/1/resolve",
        "/suspense/1/return",
        "/orders/A/reviews",
        "/orders/A/end",
        "/orders/A/end/withdraw",
        "/key-in",
        "/notices/1/handled",
        "/sign-out",
    ];
    for route in routes {
        for body in ["new URLSearchParams()", "new URLSearchParams({ csrf: 'forged', target: '12345678' })"] {
            let script = format!("const done = arguments[0]; fetch('{route}', {{ method: 'POST', body: {body} }}).then(r => done(r.status));");
            assert_eq!(browser.client.execute_async(&script, vec![]).await.unwrap(), json!(403), "{route} with {body}");
        }
    }
    let multipart = "const done = arguments[0]; const form = new FormData(); form.append('csrf', 'forged'); form.append('batch_id', 'X');
        form.append('format', 'csv'); form.append('file', new Blob(['a,b']), 'x.csv');
        fetch('/upload', { method: 'POST', body: form }).then(r => done(r.status));";
    assert_eq!(browser.client.execute_async(multipart, vec![]).await.unwrap(), json!(403), "an upload with a forged token");
    assert_eq!(app.app.store().last_distribution_run().await.unwrap(), None, "nothing was run");
    browser.go("/dashboard").await;
    assert_eq!(browser.path().await, "/dashboard", "still signed in: the forged sign-out did nothing");

    // Sign-out ends the session on the server: the old cookie no longer signs anyone in.
    let cookie = browser.client.get_named_cookie("gw_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site().map(|s| s.to_string()).as_deref(), Some("Strict"));
    browser.click("header form.sign-out button").await;
    assert_eq!(browser.path().await, "/sign-in");
    browser.client.add_cookie(cookie).await.unwrap();
    browser.go("/dashboard").await;
    assert_eq!(browser.path().await, "/sign-in", "the old session is gone");

    // Ten wrong keys are the burst; at the eleventh the address must wait, even with the
    // right key.
    for _ in 0..11 {
        browser.go("/sign-in").await;
        browser.fill("#field-key", "gwk_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000").await;
        browser.click("main button[type=submit]").await;
        assert!(browser.main_text().await.contains("not valid"));
    }
    browser.go("/sign-in").await;
    browser.fill("#field-key", &clerk).await;
    browser.click("main button[type=submit]").await;
    assert!(browser.main_text().await.contains("too many failed sign-ins"));
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn every_form_works_with_javascript_off_and_pages_fit_a_narrow_screen() {
    let _one = ONE_BROWSER.lock().await;
    let app = console_app().await;
    let employer = common::make_key(&app.app, Role::Employer, "acme-hr", &["43-1234567"]).await;
    let clerk = common::make_key(&app.app, Role::BackOffice, "clerk-jones", &[]).await;
    let vendor = common::make_key(&app.app, Role::Vendor, "acme-payroll", &[]).await;
    submit_csv(&app, &vendor, "ACME-1", &VENDOR_FILE.replace("400.00", "401.00")).await;
    let browser = Browser::open_without_javascript(console_address(&app)).await;

    // An upload is a plain form post: the acknowledgment is the answer.
    browser.sign_in(&employer).await;
    browser.go("/upload").await;
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("november.csv");
    std::fs::write(&path, VENDOR_FILE).unwrap();
    browser.fill("#field-batch_id", "NOJS-1").await;
    browser.client.find(Locator::Css("#field-file")).await.unwrap().send_keys(path.to_str().unwrap()).await.unwrap();
    browser.click("#upload button[type=submit]").await;
    let ack = browser.main_text().await;
    assert!(ack.contains("Accepted") && ack.contains("$550.00"), "{ack}");
    browser.click("header form.sign-out button").await;

    // The clerk resolves the item and runs distribution, every step a page of its own.
    browser.sign_in(&clerk).await;
    browser.go("/suspense").await;
    browser.click("table.keyboard-list tbody tr a").await;
    browser.fill("#field-target", "22345678").await;
    browser.click("form[action$='/resolve'] button").await;
    assert!(browser.main_text().await.contains("Resolved: collection"));
    browser.go("/distribution").await;
    browser.click("main form button").await;
    assert!(browser.main_text().await.contains("$951.00"), "both files' lines and the resolved item distributed");
    // Two files listed, and no sort buttons: the page's script did not run (WebDriver's own
    // scripts, which the test uses, still do).
    browser.go("/files").await;
    assert_eq!(browser.client.find_all(Locator::Css("main table tbody tr")).await.unwrap().len(), 2);
    assert!(browser.client.find_all(Locator::Css("th button.sort")).await.unwrap().is_empty(), "no script ran");

    browser.close().await;

    // A phone's width: the pages reflow (no horizontal scroll of the page) and stay accessible
    // (axe-core needs scripts, so this browser runs them).
    let browser = Browser::open(console_address(&app)).await;
    browser.sign_in(&clerk).await;
    browser.client.set_window_size(390, 844).await.unwrap();
    for (path, name) in [("/dashboard", "narrow-dashboard"), ("/suspense?state=RESOLVED", "narrow-suspense"), ("/files", "narrow-files")] {
        browser.go(path).await;
        let overflow: Value =
            browser.client.execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth", vec![]).await.unwrap();
        assert!(overflow.as_i64().unwrap() <= 0, "{path} scrolls sideways by {overflow} px");
        browser.check_page(name).await;
    }
    browser.close().await;
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn stopping_the_server_closes_idle_console_connections_at_once_and_takes_no_new_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = console_app().await;
    let address = console_address(&app);
    // A browser's keep-alive connection, idle after its page.
    let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
    idle.write_all(format!("GET /sign-in HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).await.unwrap();
    let (mut page, mut buffer) = (Vec::new(), vec![0u8; 1 << 16]);
    while !String::from_utf8_lossy(&page).contains("</html>") {
        let read = idle.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the page came whole");
        page.extend_from_slice(&buffer[..read]);
    }
    let listener = listening_socket(address).expect("the console listens while the server runs");
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "an idle console connection does not hold the stop: {:?}", started.elapsed());
    let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buffer)).await.expect("the idle connection is closed, not left open");
    assert_eq!(read.unwrap(), 0, "closed by the server");
    // No new connection is taken: the console's listening socket is gone. Read from the
    // kernel's table of sockets, not tried: connecting to the port was flaky (with no listener,
    // a connect from 127.0.0.1 may be given that port as its source and connect to itself), and
    // so was binding it again (the port, free, may be any other test's outgoing connection's
    // source meanwhile). And the socket is known by its inode, not by its address: once a CI
    // run found a socket listening on the console's address after the stop, though the console
    // drops its listener before the stop returns; most likely another test's server, started
    // meanwhile, given the freed port.
    assert!(!listening_inodes().iter().any(|(_, inode)| *inode == listener), "the console's listener is closed");
}

/// The inode of the socket listening on `address` (IPv4), if one does.
fn listening_socket(address: std::net::SocketAddr) -> Option<String> {
    let std::net::SocketAddr::V4(address) = address else { panic!("the console listens on 127.0.0.1") };
    let local = format!("{:08X}:{:04X}", u32::from_le_bytes(address.ip().octets()), address.port());
    listening_inodes().into_iter().find(|(at, _)| *at == local).map(|(_, inode)| inode)
}

/// This machine's listening IPv4 sockets from `/proc/net/tcp`: each one's local address (hex of
/// the address in network order, and the port) and inode, for the lines in state `0A` (LISTEN).
fn listening_inodes() -> Vec<(String, String)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("the kernel's table of TCP sockets");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(3) == Some(&"0A")).then(|| (fields[1].to_owned(), fields.get(9).expect("an inode column").to_string()))
        })
        .collect()
}
