//! Which data-plane worker the current thread is.
//!
//! The data plane runs one single-threaded event loop per worker thread
//! (see `listener`). A connection, its upstream connections and every task
//! they wake stay on one thread: no work-stealing hand-offs, no cross-thread
//! wake-ups on the request path. State that must not cross workers, such as
//! upstream connection pools, is kept in per-worker slots indexed by
//! [`slot`].

use std::cell::Cell;

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
