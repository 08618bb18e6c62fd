//! Which workers take new connections: as few as keep up with them.
//!
//! All workers share the two listening sockets, and Linux wakes every worker
//! waiting on a socket for each connection that arrives. Spread thinly over
//! all workers, connections leave each one idle between its few events, and
//! every idle gap is a sleep in `epoll_wait` and a wake-up: under a load of
//! new TLS connections (one request each, 64 at a time, on 2 cores), two
//! workers slept 2.8 times per connection and spent 165 µs of CPU on it,
//! one worker 0.9 times and 120 µs, serving more connections per second.
//!
//! So worker 0 always accepts, and worker `k` joins it only once the workers
//! before it have been busy for most of a tenth of a second ([`JOIN`],
//! averaged over [`JOIN_WINDOWS`] windows): a 25 ms spike of a moderate load
//! is not a load that needs help. It leaves again after a second in which
//! the workers before it could have carried its connections too without
//! reaching [`JOIN`] ([`LEAVE`], averaged over [`CALM_WINDOWS`]), counting
//! its load as if it moved over at no extra cost. A second accepting worker
//! costs CPU (under the load above, 1.33 times the CPU per connection, 3.2
//! context switches per connection instead of 1.2, and no more connections
//! per second), so the group's load measured with it in is more than the
//! same load carried by one worker fewer. Leaving only when the group with
//! it is under half its capacity would keep a second worker for good once a
//! heavier minute had called it in: a load of 55 % of one worker measures
//! 73 % of one across two. Joining is quick, so a burst waits a tenth of a
//! second for help; leaving takes a second, so the set does not flap.
//! Connections stay on the worker that accepted them; a worker that stops
//! accepting keeps serving its own. A worker they saturate asks some of its
//! keep-alive clients to reconnect once another accepting worker has room
//! ([`shedding`]).
//!
//! Busy means CPU time: the worker thread's own, read once a window. Time a
//! worker is ready to run but waits for a core (on a machine it shares with
//! other processes) is not counted: another worker would wait for the same
//! cores.
//!
//! Steering mostly decides where new connections go, so it rests while none
//! arrive: after a window in which no worker accepted one, none is
//! saturated and its own keep-alive clients do not keep it busy, a worker
//! stops measuring until the next connection is accepted (by any worker) or
//! a saturated worker wakes it, then measures a fresh window before it
//! decides again. While it rests with keep-alive clients, it looks at its
//! own load once a second, as they can saturate it without a new
//! connection. An idle proxy's workers
//! therefore sleep, instead of waking 40 times a second each (on a 64-core
//! machine, 2,560 wake-ups a second doing nothing). A burst after a rest
//! waits its tenth of a second afresh: the workers' figures from before the
//! rest are not trusted.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::shedding;

/// How often a worker measures itself and decides whether it accepts.
pub(crate) const WINDOW: Duration = Duration::from_millis(25);
/// Busy share (per mille) of the accepting workers, averaged over
/// [`JOIN_WINDOWS`], at or above which the next worker joins them.
pub(crate) const JOIN: u32 = 800;
/// Consecutive windows (a tenth of a second) whose mean decides a join.
pub(crate) const JOIN_WINDOWS: usize = 4;
/// Busy share (per mille) the accepting workers would have without the last
/// of them, averaged over [`CALM_WINDOWS`], under which that one leaves. It
/// is [`JOIN`]: a worker leaves when the others would not call it back.
pub(crate) const LEAVE: u32 = JOIN;
/// Consecutive windows (a second) whose mean decides a leave.
const CALM_WINDOWS: u32 = 40;

/// What one worker's steering remembers of its group's load from one window
/// to the next; forgotten whenever the worker joins or leaves, its group
/// changes, or steering rests.
#[derive(Debug, Default)]
struct Trend {
    /// Waiting to join: the busy shares summed over the workers before this
    /// one, in the last [`JOIN_WINDOWS`] windows (a ring).
    recent: [u64; JOIN_WINDOWS],
    /// Where the next window goes in `recent`.
    next: usize,
    /// Windows counted since the trend was last forgotten.
    windows: u32,
    /// Accepting: the busy shares summed over this worker and those before
    /// it, over the windows counted.
    second: u64,
}

/// CPU time the current thread has used.
fn cpu_time() -> Duration {
    let spent = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(spent.tv_sec).unwrap_or(0),
        u32::try_from(spent.tv_nsec).unwrap_or(0),
    )
}

/// What the workers tell each other.
#[derive(Debug)]
pub(crate) struct Gate {
    workers: Box<[Load]>,
    /// Connections accepted so far, by every worker.
    accepted: AtomicU64,
    /// Some worker's steering rests until the next connection.
    resting: AtomicBool,
    /// Wakes the resting steering loops.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Load {
    /// Busy share over the last window, per mille.
    busy: AtomicU32,
    accepting: AtomicBool,
    /// Accepting, but leaving new connections to the others while it moves
    /// clients to them (see [`shedding`]).
    passing: AtomicBool,
    /// Saturated by the clients it has (see [`shedding`]).
    hot: AtomicBool,
}

impl Gate {
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        let gate = Self {
            workers: (0..workers.max(1)).map(|_| Load::default()).collect(),
            accepted: AtomicU64::new(0),
            resting: AtomicBool::new(false),
            wake: Notify::new(),
        };
        gate.workers[0].accepting.store(true, Ordering::Relaxed);
        Arc::new(gate)
    }

    /// Whether worker `index` starts out accepting.
    pub(crate) fn accepting(&self, index: usize) -> bool {
        self.workers
            .get(index)
            .is_some_and(|load| load.accepting.load(Ordering::Relaxed))
    }

    /// Counts a connection a worker accepted, waking resting steering.
    pub(crate) fn note_accepted(&self) {
        // Sequentially consistent with `rest`: either the resting loop sees
        // this count, or this sees its flag and wakes it.
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.wake_resting();
    }

    fn wake_resting(&self) {
        if self.resting.load(Ordering::SeqCst) && self.resting.swap(false, Ordering::SeqCst) {
            self.wake.notify_waiters();
        }
    }

    /// Whether some worker is saturated: steering does not rest then,
    /// though no connection arrives (see [`shedding`]).
    fn any_hot(&self) -> bool {
        self.workers
            .iter()
            .any(|load| load.hot.load(Ordering::Relaxed))
    }

    /// The lowest busy share among the accepting workers other than
    /// `index`, which would take the clients it moves.
    fn least_busy(&self, index: usize) -> Option<u32> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(other, load)| {
                *other != index
                    && load.accepting.load(Ordering::Relaxed)
                    && !load.passing.load(Ordering::Relaxed)
            })
            .map(|(_, load)| load.busy.load(Ordering::Relaxed))
            .min()
    }

    /// Waits until a connection is accepted after the count `seen`.
    async fn rest(&self, seen: u64) {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        self.resting.store(true, Ordering::SeqCst);
        if self.accepted.load(Ordering::SeqCst) != seen {
            return;
        }
        woken.await;
    }

    /// Worker `index`'s own loop, for as long as its runtime runs: measures
    /// how busy it is each [`WINDOW`], publishes that, and tells its accept
    /// loops through `accepting` whether to take connections; rests while
    /// no connections arrive.
    pub(crate) async fn steer(&self, index: usize, accepting: &watch::Sender<bool>) {
        if self.workers.len() == 1 {
            // Nobody to hand connections to.
            return;
        }
        // The first tick a window from now: an interval's first is at once,
        // and a window of nothing would read as anything from idle to full.
        let mut ticks = tokio::time::interval_at(Instant::now() + WINDOW, WINDOW);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (Instant::now(), cpu_time());
        let mut seen = self.accepted.load(Ordering::SeqCst);
        let mut trend = Trend::default();
        let mut moving = shedding::Policy::default();
        loop {
            ticks.tick().await;
            let now = (Instant::now(), cpu_time());
            let busy = busy_share(now.0 - last.0, now.1.saturating_sub(last.1));
            last = now;
            self.workers[index].busy.store(busy, Ordering::Relaxed);
            let on = self.decide(index, &mut trend);
            self.workers[index].accepting.store(on, Ordering::Relaxed);
            let least = self.least_busy(index);
            if let Some(answers) =
                moving.decide(busy, least, shedding::kept(), shedding::CpuTicks::read)
            {
                shedding::set_to_move(answers);
            }
            // A worker moving clients leaves their new connections to the
            // others, while it still counts as accepting for joins and leaves.
            let passing = moving.passing();
            self.workers[index]
                .passing
                .store(passing, Ordering::Relaxed);
            let open = on && !passing;
            accepting.send_if_modified(|was| std::mem::replace(was, open) != open);
            let hot = moving.hot();
            self.workers[index].hot.store(hot, Ordering::Relaxed);
            if hot {
                // The others measure again, so that the next one can join
                // and take the clients this one moves.
                self.wake_resting();
            }
            let accepted = self.accepted.load(Ordering::SeqCst);
            let warm = moving.warm() && shedding::kept() >= 2;
            if accepted != seen || warm || self.any_hot() {
                seen = accepted;
                continue;
            }
            // Read as idle by the others until this worker has measured a
            // whole window again, and accepting if it is to.
            self.workers[index].busy.store(0, Ordering::Relaxed);
            self.workers[index].passing.store(false, Ordering::Relaxed);
            self.workers[index].hot.store(false, Ordering::Relaxed);
            let on = self.workers[index].accepting.load(Ordering::Relaxed);
            accepting.send_if_modified(|was| std::mem::replace(was, on) != on);
            if shedding::kept() >= 2 {
                // Clients that stay connected can saturate this worker
                // without a new connection: a look once a while.
                let _ = tokio::time::timeout(shedding::CHECK_WHILE_RESTING, self.rest(seen)).await;
            } else {
                self.rest(seen).await;
            }
            trend = Trend::default();
            moving = shedding::Policy::default();
            seen = self.accepted.load(Ordering::SeqCst);
            ticks.reset();
            last = (Instant::now(), cpu_time());
        }
    }

    /// Whether worker `index` should accept, given what every worker last
    /// published and what it remembers of the windows before (`trend`).
    fn decide(&self, index: usize, trend: &mut Trend) -> bool {
        let Some(group) = index.checked_sub(1) else {
            return true;
        };
        let before = &self.workers[..=group];
        let was = self.workers[index].accepting.load(Ordering::Relaxed);
        // Joining and leaving keep the accepting workers a prefix 0..=k.
        let next_accepts = self
            .workers
            .get(index + 1)
            .is_some_and(|load| load.accepting.load(Ordering::Relaxed));
        let on = if !before[group].accepting.load(Ordering::Relaxed) {
            *trend = Trend::default();
            false
        } else if !was {
            trend.note_waiting(sum(before));
            trend.windows as usize >= JOIN_WINDOWS
                && trend.recent.iter().sum::<u64>()
                    >= u64::from(JOIN) * before.len() as u64 * JOIN_WINDOWS as u64
        } else if next_accepts {
            // Not while a later one accepts: it leaves first.
            *trend = Trend::default();
            true
        } else {
            trend.second += sum(&self.workers[..=index]);
            trend.windows += 1;
            if trend.windows < CALM_WINDOWS {
                true
            } else {
                let stay = trend.second
                    >= u64::from(LEAVE) * before.len() as u64 * u64::from(CALM_WINDOWS);
                *trend = Trend::default();
                stay
            }
        };
        if on != was {
            *trend = Trend::default();
        }
        on
    }
}

impl Trend {
    /// Counts a window's load of the workers before one waiting to join.
    fn note_waiting(&mut self, busy: u64) {
        self.recent[self.next] = busy;
        self.next = (self.next + 1) % JOIN_WINDOWS;
        self.windows = self.windows.saturating_add(1);
    }
}

/// The busy shares of `loads`, summed.
fn sum(loads: &[Load]) -> u64 {
    loads
        .iter()
        .map(|load| u64::from(load.busy.load(Ordering::Relaxed)))
        .sum()
}

/// Per mille of `window` spent `busy`.
fn busy_share(window: Duration, busy: Duration) -> u32 {
    if window.is_zero() {
        return 0;
    }
    let busy = busy.as_micros() * 1000 / window.as_micros();
    u32::try_from(busy.min(1000)).unwrap_or(1000)
}

/// A worker's copy of a listening socket, registered with its event loop
/// only while the worker accepts: a socket it does not wait on does not
/// wake it.
#[derive(Debug)]
pub(crate) struct GatedListener {
    socket: std::net::TcpListener,
    accepting: watch::Receiver<bool>,
    registered: Option<TcpListener>,
}

impl GatedListener {
    pub(crate) fn new(socket: std::net::TcpListener, accepting: watch::Receiver<bool>) -> Self {
        Self {
            socket,
            accepting,
            registered: None,
        }
    }

    /// The next connection, waiting while the gate is closed; `None` once
    /// the gate's sender is gone.
    pub(crate) async fn accept(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        loop {
            let listener = match &mut self.registered {
                Some(listener) => listener,
                empty => {
                    self.accepting.wait_for(|on| *on).await.ok()?;
                    match self.socket.try_clone().and_then(TcpListener::from_std) {
                        Ok(listener) => empty.insert(listener),
                        Err(error) => return Some(Err(error)),
                    }
                }
            };
            let closed = tokio::select! {
                biased;
                accepted = listener.accept() => return Some(accepted),
                closed = self.accepting.wait_for(|on| !*on) => closed.is_err(),
            };
            // Deregistered (and this copy of the socket closed) until the
            // gate opens again.
            self.registered = None;
            if closed {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
