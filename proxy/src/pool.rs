//! Idle HTTP/1.1 connections to one upstream address, kept for reuse.
//!
//! One pool per worker thread and address (see [`crate::worker`]): only its
//! own worker takes from or returns to a pool, so a connection is only ever
//! polled by the event loop it is registered with. The idle list is that
//! thread's own ([`ThreadLocal`]): no lock, and no atomic operation beyond
//! finding it. A connection returns the moment its response body has
//! been read (see [`crate::h1::UpstreamBody`]).
//!
//! Idle connections have no task of their own. Whether the upstream closed
//! one is checked when it is taken; each worker also sweeps its pools every
//! few seconds, so connections the upstream closed, or that sat idle too
//! long, do not hold sockets open while traffic is quiet. A pool the sweep
//! finds empty leaves the sweep's list until a connection returns to it, and
//! with the list empty the sweep rests: an idle worker is not woken for it.
//!
//! A returned connection is not stamped with the clock: the first sweep to
//! find it idle stamps it, up to one [`SWEEP_INTERVAL`] after its return, and
//! its [`IDLE_TIMEOUT`] counts from there. A request reads the clock once
//! less for it.
//!
//! The most recently returned connection is taken first. Under load the
//! same few connections, as many as are busy at once, go round with their
//! buffers and sockets warm in the caches, and the surplus left by a burst
//! expires. Taking the oldest first kept every connection of the largest
//! burst in use (hundreds after 256 concurrent HTTP/2 streams), so that each
//! request went out on a connection cold in the caches: in the load
//! harness, that made each later new-connection request cost up to a third
//! more CPU.

use std::cell::{Cell, RefCell, RefMut};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use thread_local::ThreadLocal;

use crate::h1::Connection;
use crate::worker::Resting;

/// How long an idle pooled upstream connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream address and worker.
pub(crate) const MAX_IDLE: usize = 256;
/// How often a worker looks through its pools for closed or expired
/// connections.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Idle {
    connection: Box<Connection>,
    /// When a sweep first found it idle; `None` until one has.
    since: Option<Instant>,
}

impl Idle {
    /// Not idle for too long, and not closed by the upstream meanwhile.
    fn is_usable(&self, now: Instant) -> bool {
        self.since
            .is_none_or(|since| now.duration_since(since) <= IDLE_TIMEOUT)
            && self.connection.is_open_and_idle()
    }
}

/// Idle connections to one address, for one worker.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// The list of the worker that uses the pool. (Were a table ever built
    /// for fewer workers than run, those sharing a pool would each have
    /// their own list here, and their own sweep of it.)
    local: ThreadLocal<Local>,
}

/// One worker's part of a [`Pool`].
#[derive(Debug, Default)]
struct Local {
    /// A stack: last in, first out (see the module's doc). Allocates
    /// nothing until a connection is first returned. Borrowed only within
    /// one method of [`Pool`], never across an await.
    idle: RefCell<Vec<Idle>>,
    /// Whether the pool is on this worker's sweep list.
    listed: Cell<bool>,
}

thread_local! {
    /// The pools of the current worker that had idle connections at the
    /// last sweep, or were returned one since.
    static SWEPT: RefCell<Vec<Weak<Pool>>> = const { RefCell::new(Vec::new()) };
    /// The sweep, while it rests with no pool to look through.
    static RESTING: Resting = const { Resting::new() };
}

impl Pool {
    /// An idle connection that is still open at `now` (the caller's clock
    /// reading, taken a moment ago), if there is one. Closed and expired
    /// connections found on the way are dropped (which closes them).
    pub(crate) fn take(&self, now: Instant) -> Option<Box<Connection>> {
        let mut idle = self.idle();
        while let Some(entry) = idle.pop() {
            if entry.is_usable(now) {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Returns a connection after a complete exchange; one over the limit
    /// is dropped (which closes it).
    pub(crate) fn put(self: &Arc<Self>, connection: Box<Connection>) {
        let local = self.local.get_or_default();
        {
            let mut idle = local.idle.borrow_mut();
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                connection,
                since: None,
            });
        }
        if !local.listed.replace(true) {
            let weak = Arc::downgrade(self);
            SWEPT.with(|pools| pools.borrow_mut().push(weak));
            RESTING.with(Resting::wake);
        }
    }

    /// Drops the connections that are closed or expired; keeps the others
    /// in their order, stamping those returned since the last sweep.
    /// Returns whether any are left.
    fn sweep(&self, now: Instant) -> bool {
        let mut idle = self.idle();
        idle.retain_mut(|entry| {
            let usable = entry.is_usable(now);
            entry.since.get_or_insert(now);
            usable
        });
        !idle.is_empty()
    }

    /// The calling worker's idle list.
    fn idle(&self) -> RefMut<'_, Vec<Idle>> {
        self.local.get_or_default().idle.borrow_mut()
    }

    /// How many connections are idle here (for tests).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle().len()
    }
}

/// Sweeps the current worker's pools every [`SWEEP_INTERVAL`], forever;
/// pools of tables that were swapped out, and pools left empty, fall off the
/// list. Rests while the list is empty.
pub(crate) async fn sweep_idle() {
    // A returned connection is stamped by its first sweep, an interval
    // after the rest ends.
    crate::worker::sweep_every(SWEEP_INTERVAL, &RESTING, sweep_now, listed).await;
}

/// Whether the current worker has a pool on its sweep list.
fn listed() -> bool {
    SWEPT.with(|pools| !pools.borrow().is_empty())
}

fn sweep_now() {
    let now = Instant::now();
    let pools: Vec<Arc<Pool>> =
        SWEPT.with(|pools| pools.borrow().iter().filter_map(Weak::upgrade).collect());
    for pool in &pools {
        if !pool.sweep(now) {
            // Listed again by the next connection this worker returns to it.
            pool.local.get_or_default().listed.set(false);
        }
    }
    drop(pools);
    // Pools of swapped-out tables are gone; emptied ones are unlisted.
    SWEPT.with(|pools| {
        pools.borrow_mut().retain(|pool| {
            pool.upgrade()
                .is_some_and(|pool| pool.local.get_or_default().listed.get())
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::Authority;

    #[tokio::test]
    async fn a_returned_connection_is_reused_and_a_closed_one_is_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = Arc::new(Pool::default());
        assert!(pool.take(Instant::now()).is_none());

        let connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        pool.put(connection);
        assert_eq!(pool.idle_count(), 1);
        let connection = pool
            .take(Instant::now())
            .expect("an open idle connection is reused");
        assert_eq!(pool.idle_count(), 0);

        // The upstream closes the connection while it is idle.
        pool.put(connection);
        drop(server_side);
        let closed = async {
            while pool.idle_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                sweep_now();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the sweep drops a connection the upstream closed");
        assert!(pool.take(Instant::now()).is_none());
    }

    #[tokio::test]
    async fn an_idle_connection_expires_a_timeout_after_the_first_sweep_that_saw_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = Arc::new(Pool::default());
        let connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let (_server_side, _) = listener.accept().await.unwrap();
        pool.put(connection);

        // However late the first sweep comes, the connection is idle from then.
        let seen = Instant::now() + 10 * IDLE_TIMEOUT;
        pool.sweep(seen);
        assert_eq!(pool.idle_count(), 1, "stamped, not expired");
        pool.sweep(seen + IDLE_TIMEOUT);
        assert_eq!(pool.idle_count(), 1, "idle exactly the timeout: still kept");
        let later = seen + IDLE_TIMEOUT + Duration::from_millis(1);
        assert!(pool.take(later).is_none(), "past the timeout it is dropped");
        assert_eq!(pool.idle_count(), 0);
    }

    /// Where a boxed connection lives: the same box comes back out of the pool.
    fn address(connection: &Connection) -> *const Connection {
        connection
    }

    #[tokio::test]
    async fn the_last_connection_returned_is_taken_first_and_the_surplus_expires() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let pool = Arc::new(Pool::default());
        let mut opened = Vec::new();
        for _ in 0..3 {
            let connection = Connection::open(&authority, Duration::from_secs(1))
                .await
                .unwrap();
            opened.push((address(&connection), listener.accept().await.unwrap()));
            pool.put(connection);
        }
        let newest = opened[2].0;

        // One request at a time keeps taking the same, newest, connection.
        let start = Instant::now();
        pool.sweep(start);
        for round in 1..=3u32 {
            let now = start + IDLE_TIMEOUT / 2 * round;
            let connection = pool.take(now).expect("a connection is idle");
            assert_eq!(address(&connection), newest, "round {round}");
            pool.put(connection);
            pool.sweep(now);
        }
        // The two it did not need expired; the one in use is kept.
        assert_eq!(pool.idle_count(), 1);
        let connection = pool.take(start + IDLE_TIMEOUT * 2).unwrap();
        assert_eq!(address(&connection), newest);
    }

    fn resting() -> bool {
        RESTING.with(Resting::is_resting)
    }

    #[tokio::test]
    async fn the_sweep_rests_while_no_pool_holds_a_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        // Sweeps every few seconds of a clock that jumps ahead when idle.
        tokio::time::pause();
        let sweeping = sweep_idle();
        tokio::pin!(sweeping);
        assert!(tokio::time::timeout(SWEEP_INTERVAL * 3, sweeping.as_mut())
            .await
            .is_err());
        assert!(resting(), "no pool to sweep");

        // A returned connection lists its pool and wakes the sweep.
        let pool = Arc::new(Pool::default());
        pool.put(connection);
        assert!(!resting() && listed());
        assert!(tokio::time::timeout(SWEEP_INTERVAL * 3, sweeping.as_mut())
            .await
            .is_err());
        assert_eq!(pool.idle_count(), 1, "open and recently used: kept");
        assert!(!resting());

        // The upstream closes it: the sweep drops it, the emptied pool
        // leaves the list, and the sweep rests.
        drop(server_side);
        std::thread::sleep(Duration::from_millis(50));
        assert!(tokio::time::timeout(SWEEP_INTERVAL * 3, sweeping.as_mut())
            .await
            .is_err());
        assert_eq!(pool.idle_count(), 0);
        assert!(resting() && !listed());

        // A connection returned to it later lists it again.
        let connection = Connection::open(&authority, Duration::from_secs(1));
        tokio::time::resume();
        let connection = connection.await.unwrap();
        let (_server_side, _) = listener.accept().await.unwrap();
        pool.put(connection);
        assert!(!resting() && listed());
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let error = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, crate::h1::ConnectError::Io(_)), "{error}");
    }
}
