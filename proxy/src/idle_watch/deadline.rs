//! Upstream response deadlines kept by the idle sweep instead of a timer.
//!
//! A `tokio::time::timeout` around each upstream exchange registers a timer
//! in the worker's wheel and removes it again, for a deadline that almost
//! never fires: about 1 % of a keep-alive request's proxy CPU here (perf,
//! 2026-12-05). A request on a connection that carries one request at a time
//! (the plain HTTP/1.1 loop) instead writes its deadline into the
//! connection's [`Watch`]; the worker's sweep, which runs anyway, marks the
//! answer late and wakes the connection.
//!
//! Such a deadline fires between the timeout and one sweep interval after
//! it, never before. Only timeouts of at least [`MIN_INTERVALS`] sweep
//! intervals are kept this way (10 s and longer with the default one-second
//! sweep), so that it is at most 10 % late; shorter ones keep their timer.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{millis, millis_at, Watch, SWEEP_INTERVAL};

/// The shortest timeout the sweep keeps, in sweep intervals.
const MIN_INTERVALS: u32 = 10;
/// `respond_by` when nothing is armed.
pub(super) const UNARMED: u64 = 0;
/// `respond_by` once the sweep has found the deadline passed.
const LATE: u64 = u64::MAX;

/// An armed response deadline; disarmed when dropped, so that a body still
/// streaming after its head is not cut.
#[derive(Debug)]
pub(crate) struct ResponseDeadline(Arc<Watch>);

impl Watch {
    /// Arms a deadline `timeout` after `started` for the request in flight,
    /// when this worker's sweep is fine enough to keep it; `None` when the
    /// caller must time the exchange itself.
    ///
    /// Only for a connection with one request at a time, polled inside
    /// [`super::run`]: the sweep wakes the connection's task.
    pub(crate) fn respond_within(
        self: Arc<Self>,
        started: Instant,
        timeout: Duration,
    ) -> Option<ResponseDeadline> {
        let interval = SWEEP_INTERVAL.with(Cell::get)?;
        if timeout < interval * MIN_INTERVALS {
            return None;
        }
        let by = millis_at(started)
            .saturating_add(millis(timeout))
            .clamp(UNARMED + 1, LATE - 1);
        self.respond_by.store(by, Ordering::Relaxed);
        Some(ResponseDeadline(self))
    }

    /// Marks the answer late if its deadline has passed at `now`; whether
    /// it newly did.
    pub(super) fn mark_late(&self, now: u64) -> bool {
        let by = self.respond_by.load(Ordering::Relaxed);
        if by == UNARMED || by == LATE || now < by {
            return false;
        }
        self.respond_by.store(LATE, Ordering::Relaxed);
        true
    }
}

impl ResponseDeadline {
    /// Runs `exchange` to its end, or `None` once the sweep has found the
    /// deadline passed.
    ///
    /// Takes the exchange pinned by the caller, who may instead put it
    /// under a timer: passed by value, it would be held twice.
    pub(crate) fn bound<'a, F: Future>(
        self,
        mut exchange: Pin<&'a mut F>,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(output) = exchange.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            if self.0.respond_by.load(Ordering::Relaxed) == LATE {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
    }
}

impl Drop for ResponseDeadline {
    fn drop(&mut self) {
        self.0.respond_by.store(UNARMED, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{clock, run, sweep_now};
    use super::*;

    const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

    fn with_interval<T>(interval: Option<Duration>, f: impl FnOnce() -> T) -> T {
        SWEEP_INTERVAL.with(|cell| cell.set(interval));
        let out = f();
        SWEEP_INTERVAL.with(|cell| cell.set(None));
        out
    }

    #[test]
    fn only_timeouts_long_against_the_sweep_are_kept_by_it() {
        let watch = Watch::start();
        let now = Instant::now();
        let second = Some(Duration::from_secs(1));
        assert!(with_interval(None, || Arc::clone(&watch)
            .respond_within(now, Duration::from_secs(60)))
        .is_none());
        assert!(with_interval(second, || Arc::clone(&watch)
            .respond_within(now, Duration::from_secs(9)))
        .is_none());
        assert!(with_interval(second, || Arc::clone(&watch)
            .respond_within(now, Duration::from_secs(10)))
        .is_some());
    }

    #[tokio::test]
    async fn a_late_answer_ends_at_the_first_sweep_past_its_deadline() {
        let watch = Watch::start();
        let request = watch.begin();
        let started = Instant::now();
        let timeout = Duration::from_secs(60);
        let deadline = with_interval(Some(Duration::from_secs(1)), || {
            Arc::clone(&watch).respond_within(started, timeout)
        })
        .expect("kept by the sweep");
        let by = millis_at(started) + millis(timeout);
        let pending = std::pin::pin!(std::future::pending::<()>());
        let connection = std::pin::pin!(deadline.bound(pending));
        let late = async {
            tokio::task::yield_now().await;
            sweep_now(by - 1, HEADER_TIMEOUT);
            assert!(
                watch.respond_by.load(Ordering::Relaxed) != LATE,
                "not before the deadline"
            );
            sweep_now(by, HEADER_TIMEOUT);
        };
        let (ended, ()) = tokio::join!(run(&watch, connection), late);
        assert_eq!(
            ended,
            Some(None),
            "the exchange ends late; the connection stays"
        );
        assert!(!watch.expired.load(Ordering::Acquire));
        drop(request);
    }

    #[tokio::test]
    async fn a_deadline_is_disarmed_with_its_exchange_and_rearmed_per_request() {
        let watch = Watch::start();
        let second = Some(Duration::from_secs(1));
        let timeout = Duration::from_secs(10);
        let first = Instant::now();
        let deadline =
            with_interval(second, || Arc::clone(&watch).respond_within(first, timeout)).unwrap();
        let done = std::pin::pin!(async { 7 });
        assert_eq!(deadline.bound(done).await, Some(7));
        // Long after: the finished exchange's deadline is not held against
        // the connection (a body may still be streaming).
        let after = millis_at(first) + 10 * millis(timeout);
        assert!(!watch.mark_late(after));

        // The next request has its own deadline, from its own start.
        let next = first + 5 * timeout;
        let deadline =
            with_interval(second, || Arc::clone(&watch).respond_within(next, timeout)).unwrap();
        assert!(!watch.mark_late(millis_at(next) + millis(timeout) - 1));
        assert!(watch.mark_late(millis_at(next) + millis(timeout)));
        assert!(
            !watch.mark_late(clock() + 100 * millis(timeout)),
            "marked once"
        );
        drop(deadline);
    }
}
