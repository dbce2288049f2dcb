//! Transactions that the database undid because of a concurrent one (PostgreSQL's
//! serialization failures and deadlocks, which replicas working the same obligors can meet)
//! are run again by the server, a bounded number of times, each retry logged and counted in
//! `gateway_store_conflict_retries_total`. Only whole transactions are retried: the database
//! wrote nothing of the one it undid, so running it again cannot apply anything twice.

use std::future::Future;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::storage::StoreError;

/// Runs after the first attempt, at most.
pub const MAX_CONFLICT_RETRIES: u32 = 3;

/// Runs `attempt` until it succeeds, fails for another reason, or has been retried
/// [`MAX_CONFLICT_RETRIES`] times.
pub async fn retrying_conflicts<T, F, Fut>(metrics: &Metrics, operation: &'static str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(error) if error.is_transient_conflict() && retries < MAX_CONFLICT_RETRIES => {
                retries += 1;
                metrics.observe_conflict_retry(operation);
                tracing::warn!(operation, retry = retries, %error, "transaction undone by a concurrent one: running it again");
                tokio::time::sleep(backoff(retries)).await;
            }
            answer => return answer,
        }
    }
}

/// 5, 20, 80 ms, each plus up to as much again at random, so two replicas that collided do
/// not collide again in step.
fn backoff(retry: u32) -> Duration {
    let base = 5u64 << (2 * (retry.min(8) - 1));
    let mut random = [0u8; 2];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from(u16::from_le_bytes(random)) % (base + 1),
        Err(_) => base / 2,
    };
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A database error with a SQLSTATE, as PostgreSQL reports one.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn failing(code: &'static str) -> StoreError {
        StoreError::Database(sqlx::Error::Database(Box::new(Sqlstate(code))))
    }

    #[tokio::test]
    async fn deadlocks_and_serialization_failures_are_retried_a_bounded_number_of_times_and_counted() {
        let metrics = Metrics::default();
        let attempts = AtomicU32::new(0);
        // Two deadlocks, then success.
        let answer = retrying_conflicts(&metrics, "distribution", || async {
            match attempts.fetch_add(1, Ordering::SeqCst) {
                0 => Err(failing("40P01")),
                1 => Err(failing("40001")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 2);
        assert!(metrics.encode().contains("gateway_store_conflict_retries_total{operation=\"distribution\"} 2"), "{}", metrics.encode());

        // Always conflicting: the first attempt and three retries, then the error.
        attempts.store(0, Ordering::SeqCst);
        let answer: Result<(), _> = retrying_conflicts(&metrics, "payment", || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(failing("40P01"))
        })
        .await;
        assert!(answer.unwrap_err().is_transient_conflict());
        assert_eq!(attempts.load(Ordering::SeqCst), 1 + MAX_CONFLICT_RETRIES);

        // Anything else is never retried (a unique violation, say).
        attempts.store(0, Ordering::SeqCst);
        let answer: Result<(), _> = retrying_conflicts(&metrics, "payment", || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(failing("23505"))
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for retry in 1..=MAX_CONFLICT_RETRIES {
            let base = 5u64 << (2 * (retry - 1));
            let wait = backoff(retry).as_millis() as u64;
            assert!((base..=2 * base).contains(&wait), "retry {retry}: {wait} ms");
        }
    }
}
