//! Which data-plane worker the current thread is.
//!
//! The data plane runs one single-threaded event loop per worker thread
//! (see `listener`). A connection, its upstream connections and every task
//! they wake stay on one thread: no work-stealing hand-offs, no cross-thread
//! wake-ups on the request path. State that must not cross workers, such as
//! upstream connection pools, is kept in per-worker slots indexed by
//! [`slot`]. A worker's periodic sweeps run through [`sweep_every`], which
//! lets them rest while they have nothing to sweep.

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};
use std::thread::LocalKey;
use std::time::Duration;

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `index` (counted from 0).
pub(crate) fn enter(index: usize) {
    SLOT.with(|slot| slot.set(index + 1));
}

/// The per-worker slot of the current thread: `1 + index` on a worker,
/// 0 on any other thread (admin API, ACME, tests), which share slot 0.
pub(crate) fn slot() -> usize {
    SLOT.with(Cell::get)
}

/// One thing in progress on this worker, counted in `count` (a per-worker
/// thread-local) from [`Counted::enter`] until the guard is dropped.
#[derive(Debug)]
pub(crate) struct Counted(&'static LocalKey<Cell<u32>>);

impl Counted {
    pub(crate) fn enter(count: &'static LocalKey<Cell<u32>>) -> Self {
        count.with(|count| count.set(count.get().saturating_add(1)));
        Self(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Saturating: on a multi-threaded runtime (tests, never a data-plane
        // worker) a task can end on another thread than it began on.
        self.0
            .with(|count| count.set(count.get().saturating_sub(1)));
    }
}

/// Where a worker's sweep waits while it has nothing to sweep, so that an
/// idle worker is not woken by it; whatever gives it work again, on the
/// same worker, calls [`Resting::wake`].
#[derive(Debug)]
pub(crate) struct Resting(RefCell<Option<Waker>>);

impl Resting {
    pub(crate) const fn new() -> Self {
        Self(RefCell::new(None))
    }

    /// Wakes the sweep resting here, if it is.
    pub(crate) fn wake(&self) {
        let waker = self.0.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn is_resting(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// Runs `sweep` every `every` for as long as the worker runs. After a sweep
/// that leaves nothing `to_sweep`, rests in `resting` until there is, and
/// starts over a whole interval later.
pub(crate) async fn sweep_every(
    every: Duration,
    resting: &'static LocalKey<Resting>,
    mut sweep: impl FnMut(),
    to_sweep: impl Fn() -> bool,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sweep();
        if to_sweep() {
            continue;
        }
        std::future::poll_fn(|cx| {
            if to_sweep() {
                return Poll::Ready(());
            }
            resting.with(|resting| *resting.0.borrow_mut() = Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        ticks.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_their_own_slot_and_other_threads_share_slot_zero() {
        assert_eq!(slot(), 0);
        let on_worker = std::thread::spawn(|| {
            enter(2);
            slot()
        })
        .join()
        .unwrap();
        assert_eq!(on_worker, 3);
        assert_eq!(slot(), 0);
    }
}
