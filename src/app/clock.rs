//! The gateway's clock. Business rules ask it for "today" (late remittances, validation
//! periods, default export dates), so tests can fix it.

use chrono::{Local, NaiveDate, SecondsFormat, Utc};

pub trait Clock: Send + Sync + 'static {
    /// Today in the agency's time zone: the server's local zone, which an agency sets to its
    /// own (America/Chicago for Missouri).
    fn today(&self) -> NaiveDate;
    /// The instant, for record keeping (UTC, RFC 3339).
    fn now_rfc3339(&self) -> String {
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        Local::now().date_naive()
    }
}

/// A clock stuck on one day, for tests and demonstrations.
pub struct FixedClock(pub NaiveDate);

impl Clock for FixedClock {
    fn today(&self) -> NaiveDate {
        self.0
    }
}
