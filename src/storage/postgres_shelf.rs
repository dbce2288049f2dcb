//! A few connections kept out of the pool for the online payments' statements, lent again
//! without sqlx's round trips.
//!
//! sqlx pings every connection its pool takes back (`PoolConnection`'s return; no setting
//! turns it off): a round trip to PostgreSQL and a wake-up of its backend after every
//! statement. At 2,000 payments a second on two cores shared with PostgreSQL, a payment's
//! context read and its group's write each paid one. A shelf keeps up to `most` connections
//! detached from the pool and lends them as they are:
//!
//! - a connection whose statement succeeded is put back ([`Lent::keep`]);
//! - one whose statement failed, or was given up mid-way (a timeout, a caller gone), is in a
//!   state the shelf does not know and is closed (the pool would ping it and keep it if it
//!   answered: stricter, and a refused statement is rare);
//! - one idle longer than [`PINGED_AFTER`] is pinged before it is lent (as the pool's own
//!   `before_acquire` does), and closed if the server does not answer within
//!   [`PING_ANSWERED_WITHIN`];
//! - one idle longer than the pool's idle timeout, kept longer than the pool's lifetime
//!   limit (counted from when the shelf took it, not from when the pool opened it), or asked of
//!   the pool before the last move to a new primary (`moved_at`, set by the failover
//!   watcher), is closed rather than lent; each put back also closes the least recently
//!   used connection if it is so, so that while payments go on, connections a quieter load
//!   no longer reaches do not stay open (with no payments at all, up to `most` stay open
//!   and idle until the next payment);
//! - when a ping goes unanswered, the other kept connections, idle as long or longer, are
//!   closed too rather than each tried in turn;
//! - when `most` are out already, a pool connection is lent instead, as before the shelf.
//!
//! The shelf's connections are outside the pool's count: the server holds up to `most`
//! connections more than the pool's own (and, for a few seconds, those being closed).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// How long a connection may sit on the shelf and be lent without a ping first.
pub(super) const PINGED_AFTER: Duration = Duration::from_millis(500);

/// How long a ping may take before its connection is taken for dead (a partition that drops
/// packets silently answers nothing, and would hold the payment to its call's deadline).
pub(super) const PING_ANSWERED_WITHIN: Duration = Duration::from_secs(5);

/// How long closing a connection may take before its socket is simply dropped.
const CLOSE_ANSWERED_WITHIN: Duration = Duration::from_secs(5);

/// When the failover watcher last moved the pool to a new primary (never, with one host).
pub(super) type MovedAt = Arc<Mutex<Option<Instant>>>;

pub(super) struct Shelf {
    pool: PgPool,
    /// How long a connection may sit on the shelf at all: the pool's idle timeout. (Closing
    /// sooner would cost a new connection, several milliseconds of PostgreSQL forking and
    /// authenticating a backend, whenever the payments' concurrency rises again.)
    closed_after: Duration,
    /// How long a connection is kept from the pool at all: the pool's lifetime limit.
    kept_at_most: Duration,
    kept: Mutex<Vec<Kept>>,
    /// Connections of the shelf, kept or lent.
    owned: AtomicUsize,
    most: usize,
    moved_at: MovedAt,
}

struct Kept {
    connection: PgConnection,
    /// When it was asked of the pool, before the pool's own check that it was opened after the
    /// last move to a new primary: a move after this instant makes it stale. (Stamped when
    /// the pool answered, a move during the pool's check would go unseen.)
    asked_at: Instant,
    used_at: Instant,
}

impl Shelf {
    pub(super) fn new(pool: PgPool, most: usize, moved_at: MovedAt) -> Shelf {
        let options = pool.options();
        let closed_after = options.get_idle_timeout().unwrap_or(Duration::MAX);
        let kept_at_most = options.get_max_lifetime().unwrap_or(Duration::MAX);
        Shelf { pool, closed_after, kept_at_most, kept: Mutex::new(Vec::with_capacity(most)), owned: AtomicUsize::new(0), most, moved_at }
    }

    /// A connection for one statement (or a few); [`Lent::keep`] it once they succeeded.
    pub(super) async fn lend(&self) -> Result<Lent<'_>, sqlx::Error> {
        loop {
            let kept = self.kept.lock().expect("never poisoned").pop();
            match kept {
                Some(kept) if self.fresh(&kept) => {
                    let idle_for = kept.used_at.elapsed();
                    // Lent before the ping, so that a ping given up on (its caller gone) closes it.
                    let mut lent = Lent { connection: Connection::Shelved(Some(kept)), shelf: self };
                    if idle_for <= PINGED_AFTER || answers_ping(&mut lent).await {
                        return Ok(lent);
                    }
                    // The server did not answer: the rest, idle as long or longer, are not
                    // tried one after another (each up to the ping's limit).
                    let rest = std::mem::take(&mut *self.kept.lock().expect("never poisoned"));
                    for kept in rest {
                        self.close(kept.connection, Close::Graceful);
                    }
                }
                Some(stale) => self.close(stale.connection, Close::Graceful),
                None => break,
            }
        }
        let asked_at = Instant::now();
        let pooled = self.pool.acquire().await?;
        let connection = if self.take_one() {
            Connection::Shelved(Some(Kept { connection: pooled.detach(), asked_at, used_at: Instant::now() }))
        } else {
            Connection::Pooled(pooled)
        };
        Ok(Lent { connection, shelf: self })
    }

    fn fresh(&self, kept: &Kept) -> bool {
        let moved_since = self.moved_at.lock().expect("never poisoned").is_some_and(|moved| moved > kept.asked_at);
        kept.used_at.elapsed() <= self.closed_after && kept.asked_at.elapsed() <= self.kept_at_most && !moved_since
    }

    /// Counts one more connection of the shelf, if it has fewer than `most`.
    fn take_one(&self) -> bool {
        self.owned.fetch_update(Ordering::AcqRel, Ordering::Acquire, |owned| (owned < self.most).then_some(owned + 1)).is_ok()
    }

    /// Puts `kept` back, and closes the least recently used connection if it is no longer
    /// fresh.
    fn put_back(&self, kept: Kept) {
        let oldest = {
            let mut shelf = self.kept.lock().expect("never poisoned");
            shelf.push(kept);
            match shelf.first() {
                Some(oldest) if !self.fresh(oldest) => Some(shelf.remove(0)),
                _ => None,
            }
        };
        if let Some(oldest) = oldest {
            self.close(oldest.connection, Close::Graceful);
        }
    }

    fn close(&self, connection: PgConnection, how: Close) {
        use sqlx::Connection as _;
        self.owned.fetch_sub(1, Ordering::AcqRel);
        match (how, tokio::runtime::Handle::try_current()) {
            // An idle connection is told to end, so its backend ends at once.
            (Close::Graceful, Ok(runtime)) => {
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_ANSWERED_WITHIN, connection.close()).await;
                });
            }
            // One in a state the shelf does not know (a statement cut off mid-way, whose rest
            // a graceful close would send first), or at shutdown: its socket is dropped.
            _ => drop(connection),
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.lock().expect("never poisoned").len()
    }
}

#[derive(Clone, Copy)]
enum Close {
    Graceful,
    Dropped,
}

/// Whether the lent connection answers a ping within [`PING_ANSWERED_WITHIN`].
async fn answers_ping(lent: &mut Lent<'_>) -> bool {
    matches!(tokio::time::timeout(PING_ANSWERED_WITHIN, sqlx::Connection::ping(&mut **lent)).await, Ok(Ok(())))
}

enum Connection {
    /// `None` once put back or closed.
    Shelved(Option<Kept>),
    Pooled(PoolConnection<Postgres>),
}

/// A connection lent by the [`Shelf`]. Dropped without [`Lent::keep`], a shelf's connection
/// is closed and a pool's goes back to the pool (which pings it).
pub(super) struct Lent<'a> {
    connection: Connection,
    shelf: &'a Shelf,
}

impl Lent<'_> {
    /// Puts the connection back for the next statement: its statements succeeded.
    pub(super) fn keep(mut self) {
        if let Connection::Shelved(kept) = &mut self.connection {
            let mut kept = kept.take().expect("kept only once");
            kept.used_at = Instant::now();
            self.shelf.put_back(kept);
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Connection::Shelved(kept) = &mut self.connection {
            if let Some(kept) = kept.take() {
                self.shelf.close(kept.connection, Close::Dropped);
            }
        }
    }
}

impl Deref for Lent<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.connection {
            Connection::Shelved(kept) => &kept.as_ref().expect("lent until kept").connection,
            Connection::Pooled(pooled) => pooled,
        }
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.connection {
            Connection::Shelved(kept) => &mut kept.as_mut().expect("lent until kept").connection,
            Connection::Pooled(pooled) => pooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::postgres::test_server_url;

    async fn shelf(most: usize) -> Shelf {
        let pool = PgPool::connect(&test_server_url()).await.expect("PostgreSQL is required for these tests");
        Shelf::new(pool, most, MovedAt::default())
    }

    /// A shelf on a pool with the given idle timeout and lifetime limit.
    async fn shelf_with_limits(idle_timeout: Duration, max_lifetime: Duration) -> Shelf {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .idle_timeout(idle_timeout)
            .max_lifetime(max_lifetime)
            .connect(&test_server_url())
            .await
            .expect("PostgreSQL is required for these tests");
        Shelf::new(pool, 2, MovedAt::default())
    }

    /// The PostgreSQL backend serving `connection`, by its process and when it started (a
    /// process id alone could be reused): the same one means the same connection.
    async fn backend(connection: &mut PgConnection) -> (i32, String) {
        sqlx::query_as("SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            .fetch_one(connection)
            .await
            .unwrap()
    }

    /// Waits (up to 10 s) for the backend `pid` to end; whether it did.
    async fn ended(shelf: &Shelf, pid: i32) -> bool {
        for _ in 0..500 {
            let alive: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(&shelf.pool)
                .await
                .unwrap();
            if !alive {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Lends a connection, reads its backend, and puts it back.
    async fn lend_and_keep(shelf: &Shelf) -> (i32, String) {
        let mut lent = shelf.lend().await.unwrap();
        let backend = backend(&mut lent).await;
        lent.keep();
        backend
    }

    fn owned(shelf: &Shelf) -> usize {
        shelf.owned.load(Ordering::Acquire)
    }

    #[tokio::test]
    async fn a_connection_kept_is_lent_again_as_it_is() {
        let shelf = shelf(2).await;
        let first = lend_and_keep(&shelf).await;
        assert_eq!(shelf.kept(), 1);
        let mut again = shelf.lend().await.unwrap();
        assert_eq!(backend(&mut again).await, first, "the kept connection is lent, not one of the pool's");
        again.keep();
        assert_eq!(owned(&shelf), 1);
    }

    /// A statement that failed leaves its connection in a state the shelf does not know: the
    /// connection is closed, and the next one lent is another.
    #[tokio::test]
    async fn a_connection_not_kept_is_closed_and_another_is_lent() {
        let shelf = shelf(2).await;
        let mut lent = shelf.lend().await.unwrap();
        let first = backend(&mut lent).await;
        assert!(sqlx::query("SELECT 1 / 0").execute(&mut *lent).await.is_err());
        drop(lent);
        assert_eq!((shelf.kept(), owned(&shelf)), (0, 0));
        let mut next = shelf.lend().await.unwrap();
        assert_ne!(backend(&mut next).await, first);
        next.keep();
        assert!(ended(&shelf, first.0).await, "the backend of a connection not kept ends");
    }

    /// A TCP proxy to the tests' server that can hold back what the server sends, so a test
    /// can give up on a statement or a ping whose answer has not come (without it, whether a
    /// ping's answer has come by the end of its first poll is a race the test can lose).
    struct HoldingProxy {
        port: u16,
        hold: tokio::sync::watch::Sender<bool>,
    }

    impl HoldingProxy {
        async fn start() -> HoldingProxy {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let server: sqlx::postgres::PgConnectOptions = test_server_url().parse().unwrap();
            let upstream = (server.get_host().to_owned(), server.get_port());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (hold, held) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await else { return };
                    let ((mut from_client, mut to_client), (mut from_server, mut to_server)) = (client.into_split(), server.into_split());
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                        let _ = to_server.shutdown().await;
                    });
                    let mut held = held.clone();
                    tokio::spawn(async move {
                        let mut buffer = vec![0; 16 * 1024];
                        while let Ok(read @ 1..) = from_server.read(&mut buffer).await {
                            if held.wait_for(|held| !held).await.is_err() || to_client.write_all(&buffer[..read]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            HoldingProxy { port, hold }
        }

        /// A shelf of two on a pool whose connections go through the proxy.
        async fn shelf(&self) -> Shelf {
            let options: sqlx::postgres::PgConnectOptions = test_server_url().parse().unwrap();
            let pool = PgPool::connect_with(options.host("127.0.0.1").port(self.port)).await.expect("PostgreSQL is required for these tests");
            Shelf::new(pool, 2, MovedAt::default())
        }

        /// Holds back (or, with `false`, lets through) whatever the server sends from now on.
        fn hold_answers(&self, hold: bool) {
            self.hold.send_replace(hold);
        }
    }

    /// A statement given up on mid-way (its caller gone, a timeout) closes its connection too,
    /// and so does a ping given up on: the shelf never counts a connection it no longer has.
    #[tokio::test]
    async fn a_statement_or_a_ping_given_up_on_closes_its_connection() {
        let proxy = HoldingProxy::start().await;
        let shelf = proxy.shelf().await;
        let mut lent = shelf.lend().await.unwrap();
        let first = backend(&mut lent).await;
        // The backend notices its client gone when the sleep ends.
        let cut_off = tokio::time::timeout(Duration::from_millis(50), sqlx::query("SELECT pg_sleep(1)").execute(&mut *lent)).await;
        assert!(cut_off.is_err(), "the statement was given up on");
        drop(lent);
        assert_eq!((shelf.kept(), owned(&shelf)), (0, 0));
        assert!(ended(&shelf, first.0).await);

        let idle = lend_and_keep(&shelf).await;
        tokio::time::sleep(PINGED_AFTER + Duration::from_millis(100)).await;
        proxy.hold_answers(true);
        {
            // Polled once: the ping is sent, and the lend is dropped before its answer.
            let mut lending = std::pin::pin!(shelf.lend());
            let polled =
                std::future::poll_fn(|context| std::task::Poll::Ready(std::future::Future::poll(lending.as_mut(), context).is_pending()))
                    .await;
            assert!(polled, "the ping waits for the server's answer");
        }
        proxy.hold_answers(false);
        assert_eq!((shelf.kept(), owned(&shelf)), (0, 0));
        assert!(ended(&shelf, idle.0).await);
    }

    /// A connection idle past `PINGED_AFTER` is pinged first: lent again if its backend
    /// answers, closed (and another lent) if it has gone.
    #[tokio::test]
    async fn a_connection_idle_for_a_while_is_lent_only_if_it_answers_a_ping() {
        let shelf = shelf(2).await;
        let mut bottom = shelf.lend().await.unwrap();
        let mut lent = shelf.lend().await.unwrap();
        let (other, idle) = (backend(&mut bottom).await, backend(&mut lent).await);
        bottom.keep();
        lent.keep();
        tokio::time::sleep(PINGED_AFTER + Duration::from_millis(100)).await;
        assert_eq!(lend_and_keep(&shelf).await, idle, "an idle connection whose backend answers is lent again");
        assert_eq!(shelf.kept(), 2);

        // The top one's backend goes away: its ping fails, and the one under it, idle as
        // long, is closed rather than pinged in turn.
        let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(idle.0).fetch_one(&shelf.pool).await.unwrap();
        assert!(terminated && ended(&shelf, idle.0).await);
        tokio::time::sleep(PINGED_AFTER + Duration::from_millis(100)).await;
        let mut lent = shelf.lend().await.unwrap();
        let fresh = backend(&mut lent).await;
        assert!(fresh != idle && fresh != other, "a connection whose backend is gone is not lent, nor one under it");
        lent.keep();
        assert_eq!((shelf.kept(), owned(&shelf)), (1, 1));
        assert!(ended(&shelf, other.0).await);
    }

    /// After the pool moved to a new primary, a connection asked of it before may be on the old
    /// one: it is closed, not lent.
    #[tokio::test]
    async fn a_connection_taken_before_a_move_to_a_new_primary_is_not_lent() {
        let shelf = shelf(2).await;
        let before_the_move = lend_and_keep(&shelf).await;

        *shelf.moved_at.lock().unwrap() = Some(Instant::now());
        let after_the_move = lend_and_keep(&shelf).await;
        assert_ne!(after_the_move, before_the_move);
        assert_eq!(lend_and_keep(&shelf).await, after_the_move, "one taken after the move is lent again");
        assert_eq!(owned(&shelf), 1);
        assert!(ended(&shelf, before_the_move.0).await);
    }

    /// A connection a quieter load no longer reaches (at the bottom of the shelf, under one
    /// lent again and again) is closed when another is put back, once it is no longer fresh.
    #[tokio::test]
    async fn the_least_recently_used_connection_is_closed_when_it_is_no_longer_fresh() {
        let shelf = shelf(2).await;
        let mut bottom = shelf.lend().await.unwrap();
        let between = Instant::now();
        let mut top = shelf.lend().await.unwrap();
        let (bottom_backend, top_backend) = (backend(&mut bottom).await, backend(&mut top).await);
        bottom.keep();
        top.keep();
        assert_eq!(shelf.kept(), 2);
        // A move between the two: the bottom one was asked of the pool before it, the top one after.
        *shelf.moved_at.lock().unwrap() = Some(between);
        assert_eq!(lend_and_keep(&shelf).await, top_backend);
        assert_eq!((shelf.kept(), owned(&shelf)), (1, 1));
        assert!(ended(&shelf, bottom_backend.0).await);
    }

    /// The shelf keeps a connection no longer than the pool would: idle past the pool's idle
    /// timeout, or out of the pool past its lifetime limit (though used all along), it is
    /// closed, not lent.
    #[tokio::test]
    async fn a_connection_is_kept_no_longer_than_the_pools_limits() {
        let long = Duration::from_secs(600);
        for (idle_timeout, max_lifetime, uses) in [(Duration::from_millis(200), long, 0), (long, Duration::from_millis(300), 5)] {
            let shelf = shelf_with_limits(idle_timeout, max_lifetime).await;
            let first = lend_and_keep(&shelf).await;
            // Lent again every 50 ms, within its limits (250 ms in all).
            for _ in 0..uses {
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(lend_and_keep(&shelf).await, first, "within its limits it is lent again");
            }
            tokio::time::sleep(Duration::from_millis(if uses == 0 { 300 } else { 100 })).await;
            assert_ne!(lend_and_keep(&shelf).await, first, "idle timeout {idle_timeout:?}, lifetime {max_lifetime:?}");
            assert_eq!(owned(&shelf), 1);
            assert!(ended(&shelf, first.0).await);
        }
    }

    /// Past `most` connections out, the pool lends its own, which go back to the pool.
    #[tokio::test]
    async fn past_its_most_the_shelf_lends_the_pools_connections() {
        let shelf = shelf(1).await;
        let mut shelved = shelf.lend().await.unwrap();
        let mut pooled = shelf.lend().await.unwrap();
        assert!(matches!(shelved.connection, Connection::Shelved(_)));
        assert!(matches!(pooled.connection, Connection::Pooled(_)));
        assert_ne!(backend(&mut shelved).await, backend(&mut pooled).await);
        shelved.keep();
        pooled.keep();
        assert_eq!((shelf.kept(), owned(&shelf)), (1, 1));
    }
}
