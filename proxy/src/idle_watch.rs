//! Closing HTTP/1 connections that do not send a request head in time
//! (`server.header_read_timeout`), and HTTP/2 connections with no request
//! in flight for as long (they close with GOAWAY: see [`Watch::poll_closing`]).
//!
//! hyper's own header-read timeout arms, polls and removes a boxed timer for
//! every request head: 5.5 % of a keep-alive request's user-space
//! instructions here. This gives the same protection for a few atomic
//! operations per request. The handler counts a connection's requests in
//! flight, and each worker sweeps its connections a few times per timeout,
//! closing those that have been idle (no request being answered, no whole
//! head received) for longer.
//!
//! An answer that ends does not read the clock: it marks its connection idle
//! as of "not seen yet", and the next sweep stamps it with its own reading.
//! A connection therefore closes up to two sweep intervals past the
//! timeout, never before it, and a keep-alive request reads the clock once
//! less.
//!
//! The same list serves a worker's drain: when it stops accepting, its
//! connections between two requests are closed (see [`drain`]), and the
//! same sweep keeps long upstream response deadlines ([`deadline`]).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use crate::worker::Resting;

mod deadline;

/// The longest wait between two sweeps; shorter timeouts sweep more often.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// `idle_since` of a connection whose answer ended after the last sweep.
const UNSEEN: u64 = u64::MAX;

thread_local! {
    /// This worker's watched connections; a connection lives on the worker
    /// that accepted it.
    static WATCHED: RefCell<Vec<Weak<Watch>>> = const { RefCell::new(Vec::new()) };
    /// Set when this worker stops accepting and drains its connections.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// How often this worker sweeps; `None` on a thread that does not.
    static SWEEP_INTERVAL: Cell<Option<Duration>> = const { Cell::new(None) };
    /// The sweep, while it rests with no connection to watch.
    static RESTING: Resting = const { Resting::new() };
}

/// One connection's activity, shared by its requests and the sweep.
#[derive(Debug)]
pub(crate) struct Watch {
    /// Requests whose answer is not finished.
    in_flight: AtomicU32,
    /// When the connection last went idle, in milliseconds of [`clock`];
    /// [`UNSEEN`] until a sweep has seen it idle.
    idle_since: AtomicU64,
    /// Set by the sweep: the connection is to be closed.
    expired: AtomicBool,
    /// The deadline of the answer in flight, in milliseconds of [`clock`],
    /// or whether none is armed or it has passed (see [`deadline`]).
    respond_by: AtomicU64,
    /// The connection's task, woken to close.
    waker: AtomicWaker,
}

impl Watch {
    /// A connection idle from now on, watched by this worker's sweep.
    pub(crate) fn start() -> Arc<Self> {
        let watch = Arc::new(Self {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(clock()),
            expired: AtomicBool::new(false),
            respond_by: AtomicU64::new(deadline::UNARMED),
            waker: AtomicWaker::new(),
        });
        WATCHED.with(|watched| watched.borrow_mut().push(Arc::downgrade(&watch)));
        RESTING.with(Resting::wake);
        watch
    }

    /// A whole request head arrived: the connection is busy until the
    /// returned guard (kept with the answer) is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Whether the connection is to close: its worker drains, or it has
    /// been idle too long. Wakes `cx` when that changes.
    pub(crate) fn poll_closing(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.expired.load(Ordering::Acquire) || draining()
    }

    /// Whether the connection has been idle for `timeout` at `now`, as far
    /// as the sweeps have seen; the first sweep to see it idle after an
    /// answer stamps it with `now`.
    fn idle_for(&self, now: u64, timeout: Duration) -> bool {
        if self.in_flight.load(Ordering::Acquire) != 0 {
            return false;
        }
        let since = self.idle_since.load(Ordering::Relaxed);
        if since == UNSEEN {
            // An answer that ended between the load and the store would
            // have been stamped with this same `now` anyway.
            self.idle_since.store(now, Ordering::Relaxed);
            return false;
        }
        now.saturating_sub(since) >= millis(timeout)
    }
}

/// A request being answered; dropped when its answer is done (or abandoned).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Before the count, so that a sweep that sees no request in flight
        // also sees that the connection went idle afresh.
        self.0.idle_since.store(UNSEEN, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// Runs `connection` until it ends or the sweep finds it idle too long;
/// dropping it then closes the connection.
///
/// Takes the connection pinned by the caller: a future passed by value
/// would be held twice in this one's state, as the argument and as the
/// pinned local, and a connection's future is a few kilobytes, moved and
/// allocated with every connection.
pub(crate) async fn run<F: Future>(
    watch: &Watch,
    mut connection: Pin<&mut F>,
) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        watch.waker.register(cx.waker());
        if watch.expired.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        connection.as_mut().poll(cx).map(Some)
    })
    .await
}

/// This worker's sweep: closes connections idle for `timeout`. Ends with
/// the worker's runtime.
///
/// With no connection left to watch it rests until one starts, so that an
/// idle worker is not woken every interval for nothing.
pub(crate) async fn sweep(timeout: Duration) {
    let interval = (timeout / 4).clamp(Duration::from_millis(10), MAX_SWEEP_INTERVAL);
    SWEEP_INTERVAL.with(|every| every.set(Some(interval)));
    // A new connection is idle from its start: its first sweep is due an
    // interval after the rest ends.
    crate::worker::sweep_every(interval, &RESTING, || sweep_now(clock(), timeout), watching).await;
}

/// Whether this worker has a connection to watch (closed ones leave the
/// list at the next sweep).
fn watching() -> bool {
    WATCHED.with(|watched| !watched.borrow().is_empty())
}

fn sweep_now(now: u64, timeout: Duration) {
    WATCHED.with(|watched| {
        watched.borrow_mut().retain(|watch| {
            let Some(watch) = watch.upgrade() else {
                return false;
            };
            if watch.mark_late(now) {
                watch.waker.wake();
                return true;
            }
            if !watch.idle_for(now, timeout) {
                return true;
            }
            watch.expired.store(true, Ordering::Release);
            watch.waker.wake();
            false
        });
    });
}

/// Starts this worker's drain: connections between two requests close, and
/// answers in flight tell their clients the connection closes after them.
///
/// Every watched connection is woken, so that one waiting for its next
/// request sees the drain at once rather than at its next byte. Connections
/// that hyper serves are drained by hyper's graceful shutdown instead.
pub(crate) fn drain() {
    DRAINING.with(|draining| draining.set(true));
    WATCHED.with(|watched| {
        for watch in watched.borrow().iter().filter_map(Weak::upgrade) {
            watch.waker.wake();
        }
    });
}

/// Whether this worker is draining (see [`drain`]).
pub(crate) fn draining() -> bool {
    DRAINING.with(Cell::get)
}

/// Milliseconds since the first call: a clock the watches share.
fn clock() -> u64 {
    millis_at(Instant::now())
}

/// `instant` on [`clock`]'s scale (0 if before its start).
fn millis_at(instant: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    millis(instant.saturating_duration_since(*START.get_or_init(Instant::now)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn only_a_connection_idle_past_the_timeout_expires() {
        let idle = Watch::start();
        let busy = Watch::start();
        let request = busy.begin();
        let start = clock();
        sweep_now(start + millis(TIMEOUT) - 1, TIMEOUT);
        assert!(!idle.expired.load(Ordering::Acquire), "not yet");
        sweep_now(start + millis(TIMEOUT) + 1, TIMEOUT);
        assert!(idle.expired.load(Ordering::Acquire));
        assert!(
            !busy.expired.load(Ordering::Acquire),
            "a request in flight keeps it"
        );
        // Its answer done, the busy one is idle from the next sweep on,
        // however long it was busy before.
        drop(request);
        let done = start + 10 * millis(TIMEOUT);
        sweep_now(done, TIMEOUT);
        assert!(!busy.expired.load(Ordering::Acquire), "it just went idle");
        sweep_now(done + millis(TIMEOUT) - 1, TIMEOUT);
        assert!(!busy.expired.load(Ordering::Acquire));
        sweep_now(done + millis(TIMEOUT), TIMEOUT);
        assert!(busy.expired.load(Ordering::Acquire));
        // Expired and closed connections leave the list.
        drop((idle, busy));
        sweep_now(done, TIMEOUT);
        assert!(WATCHED.with(|watched| watched.borrow().is_empty()));
    }

    fn resting() -> bool {
        RESTING.with(Resting::is_resting)
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_rests_while_there_is_no_connection_to_watch() {
        let sweeping = sweep(TIMEOUT);
        tokio::pin!(sweeping);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), sweeping.as_mut())
                .await
                .is_err()
        );
        assert!(resting(), "nothing to watch");

        // A connection wakes it: the next sweep stamps its idleness.
        let watch = Watch::start();
        assert!(!resting());
        drop(watch.begin());
        assert_eq!(watch.idle_since.load(Ordering::Relaxed), UNSEEN);
        assert!(
            tokio::time::timeout(MAX_SWEEP_INTERVAL * 2, sweeping.as_mut())
                .await
                .is_err()
        );
        assert_ne!(watch.idle_since.load(Ordering::Relaxed), UNSEEN, "swept");
        assert!(!resting());

        // Closed, it leaves the list at the next sweep, and the sweep rests.
        drop(watch);
        assert!(
            tokio::time::timeout(MAX_SWEEP_INTERVAL * 2, sweeping.as_mut())
                .await
                .is_err()
        );
        assert!(resting());
    }

    #[tokio::test]
    async fn an_expired_connection_stops_and_a_finished_one_returns() {
        let watch = Watch::start();
        assert_eq!(run(&watch, std::pin::pin!(async { 7 })).await, Some(7));
        let watch = Watch::start();
        let pending = std::pin::pin!(std::future::pending::<()>());
        let stuck = run(&watch, pending);
        let expire = async {
            tokio::task::yield_now().await;
            sweep_now(clock() + millis(TIMEOUT), TIMEOUT);
        };
        let (ended, ()) = tokio::join!(stuck, expire);
        assert_eq!(ended, None);
    }
}
