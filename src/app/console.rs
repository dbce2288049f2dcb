//! What the web console needs beyond the use cases it shares with the gRPC API: signing in
//! with an API key, and the back office's dashboard (the reports' figures, as values).

use chrono::{Duration, NaiveDate};

use super::access::{AuthError, Caller, Credentials};
use super::remittance::FileSummary;
use super::{App, AppError};
use crate::domain::access::{Action, Principal, Role};
use crate::domain::reports::{late_by_employer, suspense_by_age, LateEmployer};
use crate::domain::month::parse_iso_date;
use crate::domain::Money;
use crate::storage::access::AuditEntry;
use crate::storage::reports::RunRecord;
use crate::storage::remittance::FileFilter;

/// The audit trail's name of a console sign-in (not an RPC, so not an [`Action`]).
pub const CONSOLE_SIGN_IN: &str = "ConsoleSignIn";

/// How many days the dashboard's chart and money by source cover.
pub const DASHBOARD_DAYS: i64 = 30;

/// The most files of today the dashboard groups by sender.
const DASHBOARD_FILES: u32 = 1000;

/// The back office's dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dashboard {
    pub today: NaiveDate,
    /// Today's files, per sender: (sender, files, lines, money).
    pub files_today: Vec<(String, u64, u64, Money)>,
    /// True when today had more files than the dashboard read.
    pub files_today_truncated: bool,
    /// Money received per day over the last [`DASHBOARD_DAYS`] days, every day listed.
    pub collections_per_day: Vec<(NaiveDate, Money)>,
    /// Money received over the same days, per source (PAYROLL, ONLINE, MANUAL): (source,
    /// collections, money).
    pub received_by_source: Vec<(String, i64, Money)>,
    /// Open suspense by age bucket: (bucket, items, money).
    pub suspense_by_age: Vec<(&'static str, i64, Money)>,
    pub undistributed: Money,
    pub in_suspense: Money,
    pub unapplied_credit: Money,
    /// Employers with late lines over the same days, the most late first.
    pub late_employers: Vec<LateEmployer>,
    pub last_run: Option<RunRecord>,
}

impl App {
    /// Signs a console user in with an API key: only back-office, employer and vendor keys
    /// may. Audited whatever the outcome, as a gRPC call is.
    pub async fn console_sign_in(&self, token: &str, request_id: &str) -> Result<Principal, AppError> {
        let principal = match self.authenticate(Credentials { token: Some(token), client_cert_sha256: None }).await {
            Ok(principal) => principal,
            Err(AuthError::Unavailable) => return Err(AppError::Unauthenticated(AuthError::Unavailable)),
            Err(error) => {
                tracing::warn!(%error, "console sign-in refused");
                self.audit_unauthenticated(request_id, CONSOLE_SIGN_IN).await;
                return Err(AppError::Unauthenticated(error));
            }
        };
        let allowed = matches!(principal.role, Role::BackOffice | Role::Employer | Role::Vendor);
        let entry = AuditEntry {
            at: self.clock.now_rfc3339(),
            request_id: request_id.to_owned(),
            actor: principal.name.clone(),
            key_id: Some(principal.key_id.clone()),
            role: principal.role.as_str().to_owned(),
            action: CONSOLE_SIGN_IN.to_owned(),
            object: "console".to_owned(),
            outcome: if allowed { "OK" } else { "PERMISSION_DENIED" }.to_owned(),
        };
        self.store.record_audit(&entry).await?;
        if !allowed {
            return Err(AppError::PermissionDenied(format!("a {} key cannot sign in to the console", principal.role)));
        }
        Ok(principal)
    }

    /// The dashboard: the figures of the back office's reports, read under the same
    /// permission ([`Action::ExportReport`]).
    pub async fn dashboard(&self, caller: &Caller) -> Result<Dashboard, AppError> {
        let audit = self.authorize(caller, Action::ExportReport, "dashboard").await?;
        let result = self.dashboard_figures().await;
        self.audited_read(audit, result).await
    }

    async fn dashboard_figures(&self) -> Result<Dashboard, AppError> {
        let today = self.today();
        let first_day = today - Duration::days(DASHBOARD_DAYS - 1);
        let today_filter = FileFilter { received_from: Some(today), received_to: Some(today), ..FileFilter::default() };
        let files = self.store.remittances(&today_filter, None, DASHBOARD_FILES + 1).await?;
        let files_today_truncated = files.len() > DASHBOARD_FILES as usize;
        let files: Vec<FileSummary> = files.into_iter().take(DASHBOARD_FILES as usize).map(FileSummary::from).collect();
        let daily = self.store.collections_by_day(Some(first_day), Some(today)).await?;
        let late = self.store.late_lines(Some(first_day), Some(today)).await?;
        let suspense_days = self.store.open_suspense_by_day().await?;
        let open = self.store.open_totals().await?;
        let undistributed = self.store.pending_total().await?;
        let last_run = self.store.last_distribution_run().await?;

        let mut collections_per_day: Vec<(NaiveDate, Money)> = first_day.iter_days().take_while(|d| *d <= today).map(|d| (d, Money::ZERO)).collect();
        let mut received_by_source: Vec<(String, i64, Money)> = Vec::new();
        for row in daily {
            let day = parse_iso_date(&row.day).ok_or_else(|| AppError::Internal(format!("a stored day is not a date: {}", row.day)))?;
            if let Some((_, money)) = collections_per_day.iter_mut().find(|(d, _)| *d == day) {
                *money += row.amount;
            }
            match received_by_source.iter_mut().find(|(source, _, _)| *source == row.source) {
                Some((_, count, money)) => {
                    *count += row.collections;
                    *money += row.amount;
                }
                None => received_by_source.push((row.source, row.collections, row.amount)),
            }
        }
        let mut files_today: Vec<(String, u64, u64, Money)> = Vec::new();
        for file in &files {
            match files_today.iter_mut().find(|(sender, ..)| *sender == file.sender) {
                Some((_, count, lines, money)) => {
                    *count += 1;
                    *lines += file.counts.line_count;
                    *money += file.counts.total;
                }
                None => files_today.push((file.sender.clone(), 1, file.counts.line_count, file.counts.total)),
            }
        }
        files_today.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
        let mut late_employers = late_by_employer(late.into_iter().map(|l| (l.employer_fein, l.pay_date, l.received_on, l.amount)));
        late_employers.sort_by(|a, b| b.lines.cmp(&a.lines).then_with(|| a.employer_fein.cmp(&b.employer_fein)));
        Ok(Dashboard {
            today,
            files_today,
            files_today_truncated,
            collections_per_day,
            received_by_source,
            suspense_by_age: suspense_by_age(today, suspense_days.into_iter().map(|d| (d.received_on, d.items, d.amount))),
            undistributed,
            in_suspense: open.suspense,
            unapplied_credit: open.unapplied,
            late_employers,
            last_run,
        })
    }
}
