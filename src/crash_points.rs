//! Named points inside the server's transactions where a reliability harness can have the
//! process kill itself, to prove that a crash at exactly that instant loses nothing that was
//! acknowledged and applies nothing twice (see `docs/reliability.md`).
//!
//! Off unless the environment variable `GATEWAY_CRASH_AT=<point>[:<n>]` is set when the
//! process starts: the `n`-th time (1 when omitted) the server reaches `<point>`, it sends
//! itself SIGKILL: no destructor, no rollback, no flush runs, exactly as `kill -9` or a
//! power cut of the process. Reaching a point costs one load of an initialized `OnceLock`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every point there is, so a harness can pick one at random and a typo is refused at start.
pub const POINTS: &[&str] = &[
    "remittance.before_commit",
    "remittance.after_commit",
    "payment.before_commit",
    "payment.after_commit",
    "return.before_commit",
    "return.after_commit",
    "distribution.before_commit",
    "distribution.after_commit",
];

/// The environment variable that arms a point.
pub const VARIABLE: &str = "GATEWAY_CRASH_AT";

#[derive(Debug)]
struct Armed {
    point: String,
    on_hit: u64,
    hits: AtomicU64,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

/// Reads `GATEWAY_CRASH_AT` once. An unknown point or count is an error, so a harness that
/// misspells one does not silently test nothing.
pub fn arm_from_environment() -> Result<(), String> {
    let armed = match std::env::var(VARIABLE) {
        Err(_) => None,
        Ok(value) => Some(parse(&value)?),
    };
    if let Some(armed) = &armed {
        tracing::warn!(point = %armed.point, on_hit = armed.on_hit, "crash point armed: the server will kill itself there");
    }
    let _ = ARMED.set(armed);
    Ok(())
}

fn parse(value: &str) -> Result<Armed, String> {
    let (point, on_hit) = match value.split_once(':') {
        Some((point, n)) => (point, n.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| format!("{VARIABLE}: {n:?} is not a count above 0"))?),
        None => (value, 1),
    };
    if !POINTS.contains(&point) {
        return Err(format!("{VARIABLE}: {point:?} is not a crash point (one of {})", POINTS.join(", ")));
    }
    Ok(Armed { point: point.to_owned(), on_hit, hits: AtomicU64::new(0) })
}

/// The server has reached `point`: kills the process if that point is armed and this is
/// its `n`-th time.
pub fn reached(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "{point} is listed in POINTS");
    let Some(Some(armed)) = ARMED.get() else { return };
    if armed.point == point && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.on_hit {
        eprintln!("crash point {point} reached: killing the process");
        kill_self();
    }
}

#[cfg(unix)]
fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid with SIGKILL has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

#[cfg(not(unix))]
fn kill_self() -> ! {
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_armed_with_an_optional_count_and_a_typo_is_refused() {
        let armed = parse("payment.after_commit:3").unwrap();
        assert_eq!((armed.point.as_str(), armed.on_hit), ("payment.after_commit", 3));
        assert_eq!(parse("distribution.before_commit").unwrap().on_hit, 1);
        assert!(parse("payment.aftercommit").unwrap_err().contains("not a crash point"));
        assert!(parse("payment.after_commit:0").unwrap_err().contains("not a count"));
        assert!(parse("payment.after_commit:x").unwrap_err().contains("not a count"));
    }
}
