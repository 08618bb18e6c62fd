//! Moving keep-alive clients off a saturated worker.
//!
//! A connection stays on the worker that accepted it, and the accept gate
//! keeps new connections on as few workers as keep up with them (see
//! `accept_gate`). That is what keeps a moderate load cheap, but connections
//! that open all at once, before any load has been measured, all land on
//! worker 0: a load generator's, or the pool of keep-alive connections a
//! CDN or load balancer in front opens together. Once they saturate that
//! worker, the gate calls in the next one, but no new connection arrives for
//! it to take, and on a machine of many cores the proxy serves them at the
//! speed of one.
//!
//! So a worker that stays saturated ([`SATURATED`] over [`HOT_WINDOWS`])
//! while another accepting worker has room ([`ROOM`]) asks some of its
//! HTTP/1.1 keep-alive clients to reconnect: their next answer carries
//! `Connection: close`, which a server may send on any answer (RFC 9112
//! §9.6), and the connection closes after it. Until the round's cooldown
//! ends, the worker stops taking new connections (while still counting as
//! accepting for the gate's joins and leaves), so the clients' new
//! connections go to the others. Each move costs its client one new
//! handshake (a resumed one, for a client that kept its session), once.
//!
//! How many: half the gap between the two workers' loads, as a share of the
//! saturated worker's connections, so that the two would meet if load
//! followed connections; at most half of them, and one round a second
//! ([`COOLDOWN_WINDOWS`]), so that the next round sees where the last one's
//! clients went. Only on a saturated worker, and only while the machine has
//! a third of a core idle: on a machine whose load generator or other
//! processes take the remaining cores, spreading 64 keep-alive connections
//! over two workers served about 15 % fewer requests per second than
//! keeping them on one worker that kept up.
//!
//! HTTP/2 connections are not moved. GOAWAY would move a browser's, but load
//! generators and many service clients treat it as the end of their run.

use std::cell::Cell;
use std::time::Duration;

use crate::worker::Counted;

/// Busy share (per mille), averaged over [`HOT_WINDOWS`], from which a
/// worker counts as saturated. Not 1000: a saturated worker still loses
/// some of each window to other processes on its core.
pub(crate) const SATURATED: u32 = 900;
/// Windows (a fifth of a second at 25 ms) whose mean decides saturation.
const HOT_WINDOWS: usize = 8;
/// Busy share (per mille), averaged over the windows measured, from which
/// a worker with clients keeps measuring itself though no connection
/// arrives: it may be on its way to saturation.
const WARM: u32 = 800;
/// Busy share (per mille) at or under which an accepting worker has room
/// for clients moved to it.
const ROOM: u32 = 700;
/// Windows (a second) after a round before the next one.
const COOLDOWN_WINDOWS: u32 = 40;

/// How often resting steering looks at a worker that keeps clients
/// connected: no new connection marks the start of their load.
pub(crate) const CHECK_WHILE_RESTING: Duration = Duration::from_secs(1);

thread_local! {
    /// Connections on this worker served by the HTTP/1.1 loop.
    static KEPT: Cell<u32> = const { Cell::new(0) };
    /// Answers on this worker still to close their connection.
    static TO_MOVE: Cell<u32> = const { Cell::new(0) };
}

/// A connection counted in this worker's HTTP/1.1 loop while held.
#[derive(Debug)]
pub(crate) struct Kept {
    _counted: Counted,
}

impl Kept {
    pub(crate) fn enter() -> Self {
        Self {
            _counted: Counted::enter(&KEPT),
        }
    }
}

/// Connections on this worker served by the HTTP/1.1 loop.
pub(crate) fn kept() -> u32 {
    KEPT.with(Cell::get)
}

/// Whether the answer being written on this worker is to close its
/// connection, so that its client reconnects elsewhere; counts it if so.
pub(crate) fn take_one() -> bool {
    TO_MOVE.with(|left| {
        let n = left.get();
        if n == 0 {
            return false;
        }
        left.set(n - 1);
        true
    })
}

/// Sets how many more answers on this worker close their connection.
pub(crate) fn set_to_move(answers: u32) {
    TO_MOVE.with(|left| left.set(answers));
}

/// The machine's CPU time from `/proc/stat`, in clock ticks summed over
/// its cores: how much of it went idle, and how much passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    idle: u64,
    total: u64,
    cores: u64,
}

impl CpuTicks {
    /// Read now; `None` where `/proc/stat` cannot be read or parsed.
    pub(crate) fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<Self> {
        let mut lines = stat.lines();
        let mut fields = lines.next()?.strip_prefix("cpu ")?.split_ascii_whitespace();
        let mut ticks = [0u64; 8];
        for tick in &mut ticks {
            *tick = fields.next()?.parse().ok()?;
        }
        // user nice system idle iowait irq softirq steal: time stolen by the
        // hypervisor is not a core this machine can use.
        let cores = lines.filter(|line| line.starts_with("cpu")).count();
        Some(Self {
            idle: ticks[3] + ticks[4],
            total: ticks.iter().sum(),
            cores: u64::try_from(cores).ok().filter(|cores| *cores > 0)?,
        })
    }

    /// Idle share of the machine between `earlier` and `self`, in per mille
    /// of one core.
    fn spare_since(&self, earlier: &Self) -> u32 {
        let total = self.total.saturating_sub(earlier.total);
        let per_core = total / self.cores;
        if per_core == 0 {
            return 0;
        }
        let idle = self.idle.saturating_sub(earlier.idle);
        u32::try_from(idle * 1000 / per_core).unwrap_or(u32::MAX)
    }
}

/// One worker's memory of its own load, from window to window.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// Busy shares of the last [`HOT_WINDOWS`] windows (a ring).
    recent: [u32; HOT_WINDOWS],
    /// Windows measured, up to [`HOT_WINDOWS`].
    measured: usize,
    /// Where the next window goes in `recent`.
    next: usize,
    /// Windows left before another round may start.
    cooldown: u32,
    /// The machine's CPU time (if it can be read) when this worker was
    /// first seen saturated, or last checked for room, and the windows
    /// since; `None` while it is not saturated.
    since: Option<(Option<CpuTicks>, usize)>,
    /// The last round moved clients, and its cooldown is not over.
    moving: bool,
}

impl Policy {
    /// After a window in which this worker was `busy` (per mille), with
    /// `least` the lowest busy share of the other accepting workers (`None`
    /// if there are none) and `kept` connections in its HTTP/1.1 loop: how
    /// many answers from now on are to close their connection, or `None`
    /// to leave the count as it is.
    ///
    /// `machine` reads the machine's CPU time, when this worker is first
    /// seen saturated and when a round is due: a worker with room counts
    /// only on a machine with a third of a core idle over the windows
    /// between, as a worker that takes no CPU time may still find its cores
    /// taken by other processes.
    pub(crate) fn decide(
        &mut self,
        busy: u32,
        least: Option<u32>,
        kept: u32,
        machine: impl FnOnce() -> Option<CpuTicks>,
    ) -> Option<u32> {
        let cooling = self.cooldown > 0;
        self.cooldown = self.cooldown.saturating_sub(1);
        self.moving &= self.cooldown > 0;
        self.recent[self.next] = busy;
        self.next = (self.next + 1) % HOT_WINDOWS;
        self.measured = (self.measured + 1).min(HOT_WINDOWS);
        if !self.hot() {
            // Saturation passed, or is not yet measured: clients not yet
            // asked stay.
            self.since = None;
            return Some(0);
        }
        let Some((since, windows)) = &mut self.since else {
            self.since = Some((machine(), 0));
            return None;
        };
        *windows += 1;
        if *windows < HOT_WINDOWS || cooling {
            return None;
        }
        let since = *since;
        let least = least.filter(|least| *least <= ROOM)?;
        if kept < 2 {
            // One client moved takes all of its load along.
            return None;
        }
        let now = machine();
        let spare = match (now, since) {
            (Some(now), Some(since)) => now.spare_since(&since),
            // Where the machine's time cannot be read, the workers' is all
            // there is to go by.
            _ => 1000,
        };
        self.since = Some((now, 0));
        if spare < 1000 - ROOM {
            // Looked at again over as many windows: one window is a few
            // of the kernel's clock ticks.
            return None;
        }
        let busy = self.mean();
        let gap = u64::from(busy.max(least) - least);
        let share = (u64::from(kept) * gap).div_ceil(2 * u64::from(busy.max(1)));
        let answers = u32::try_from(share).unwrap_or(u32::MAX).min(kept / 2);
        self.cooldown = COOLDOWN_WINDOWS;
        self.moving = answers > 0;
        Some(answers)
    }

    fn mean(&self) -> u32 {
        let measured = &self.recent[..self.measured.max(1)];
        let sum: u64 = measured.iter().map(|busy| u64::from(*busy)).sum();
        u32::try_from(sum / measured.len() as u64).unwrap_or(u32::MAX)
    }

    /// Saturated over the last [`HOT_WINDOWS`] windows.
    pub(crate) fn hot(&self) -> bool {
        self.measured == HOT_WINDOWS && self.mean() >= SATURATED
    }

    /// Busy enough, over the windows measured, to keep measuring.
    pub(crate) fn warm(&self) -> bool {
        self.measured > 0 && self.mean() >= WARM
    }

    /// Whether this worker is moving clients: until the round's cooldown
    /// ends, new connections are for the others, so that the clients it
    /// moves do not come back to it.
    pub(crate) fn passing(&self) -> bool {
        self.moving
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `windows` windows of the same load: what each decided.
    fn windows(
        policy: &mut Policy,
        windows: usize,
        (busy, least, kept): (u32, Option<u32>, u32),
    ) -> Vec<Option<u32>> {
        (0..windows)
            .map(|_| policy.decide(busy, least, kept, || None))
            .collect()
    }

    /// Windows from the first saturated one to the first round, on a
    /// machine whose time cannot be read.
    const TO_ROUND: usize = 2 * HOT_WINDOWS;

    #[test]
    fn a_saturated_worker_moves_half_the_gap_after_two_fifths_of_a_second() {
        let mut policy = Policy::default();
        let decided = windows(&mut policy, TO_ROUND, (1000, Some(0), 64));
        assert_eq!(decided[..HOT_WINDOWS - 1], [Some(0); HOT_WINDOWS - 1]);
        assert!(decided[HOT_WINDOWS - 1..TO_ROUND - 1]
            .iter()
            .all(Option::is_none));
        // Load 1000 against 0: half of 64 would even them out.
        assert_eq!(decided.last(), Some(&Some(32)));
        assert!(policy.passing());

        let mut policy = Policy::default();
        let decided = windows(&mut policy, TO_ROUND, (1000, Some(600), 64));
        // (1000 - 600) / 2000 of 64 is 12.8: rounded up.
        assert_eq!(decided.last(), Some(&Some(13)));
    }

    #[test]
    fn saturation_is_the_mean_of_a_fifth_of_a_second() {
        let mut policy = Policy::default();
        // Windows that lose some time to other processes, averaging 920.
        let noisy = [990, 850, 980, 860];
        for (window, busy) in noisy.iter().cycle().take(TO_ROUND - 1).enumerate() {
            let decided = policy.decide(*busy, Some(0), 64, || None);
            assert!(policy.warm());
            assert_eq!(policy.hot(), window + 1 >= HOT_WINDOWS);
            assert_eq!(decided.is_none(), window + 1 >= HOT_WINDOWS);
        }
        assert_eq!(policy.decide(990, Some(0), 64, || None), Some(32));

        // A dip that brings the mean under SATURATED starts the count over.
        let mut policy = Policy::default();
        windows(&mut policy, TO_ROUND - 1, (1000, Some(0), 64));
        assert_eq!(policy.decide(100, Some(0), 64, || None), Some(0));
        assert!(!policy.hot() && policy.warm());
        let mut again = vec![Some(0); HOT_WINDOWS - 1];
        again.push(None);
        assert_eq!(
            windows(&mut policy, HOT_WINDOWS, (1000, Some(0), 64)),
            again
        );
    }

    #[test]
    fn one_round_a_second_while_saturation_lasts() {
        let mut policy = Policy::default();
        let load = (1000, Some(0), 64);
        assert_eq!(windows(&mut policy, TO_ROUND, load).last(), Some(&Some(32)));
        let next = windows(&mut policy, COOLDOWN_WINDOWS as usize, load);
        assert_eq!(next, vec![None; COOLDOWN_WINDOWS as usize]);
        assert!(!policy.passing(), "new connections are welcome again");
        assert_eq!(policy.decide(1000, Some(0), 40, || None), Some(20));
    }

    #[test]
    fn nothing_moves_below_saturation_without_room_or_with_one_client() {
        let mut policy = Policy::default();
        // Busy, but keeping up: clients stay, and any asked to move stay too.
        assert_eq!(
            windows(&mut policy, 100, (SATURATED - 1, Some(0), 64)),
            vec![Some(0); 100]
        );
        assert!(!policy.passing());
        // The other accepting workers are busy as well, or there are none.
        let mut policy = Policy::default();
        for load in [
            (1000, Some(ROOM + 1), 64),
            (1000, None, 64),
            (1000, Some(0), 1),
        ] {
            assert!(windows(&mut policy, 100, load)[HOT_WINDOWS..]
                .iter()
                .all(Option::is_none));
        }
        // Room appears: a round at once, the worker has been hot for long.
        assert_eq!(policy.decide(1000, Some(ROOM), 64, || None), Some(10));
    }

    #[test]
    fn a_round_waits_for_a_machine_with_a_third_of_a_core_idle() {
        let at = |idle, total| CpuTicks {
            idle,
            total,
            cores: 4,
        };
        // Four cores, 20 ticks each between two readings.
        let readings = std::cell::RefCell::new(vec![
            at(1000, 10_000),
            // 5 idle ticks of 80: a quarter of a core.
            at(1005, 10_080),
            // 7 of 80: over a third.
            at(1012, 10_160),
        ]);
        let machine = || Some(readings.borrow_mut().remove(0));
        let mut policy = Policy::default();
        let load = (1000, Some(0), 64);
        windows(&mut policy, HOT_WINDOWS - 1, load);
        assert_eq!(policy.decide(1000, Some(0), 64, machine), None);
        windows(&mut policy, HOT_WINDOWS - 1, load);
        assert_eq!(
            policy.decide(1000, Some(0), 64, machine),
            None,
            "the other cores are busy"
        );
        windows(&mut policy, HOT_WINDOWS - 1, load);
        assert_eq!(policy.decide(1000, Some(0), 64, machine), Some(32));
        assert!(readings.borrow().is_empty());
    }

    #[test]
    fn the_machine_time_parses_from_proc_stat() {
        let stat = "cpu  100 5 50 1000 20 3 7 15 0 0\ncpu0 50 0 25 500 10 1 3 7 0 0\ncpu1 50 5 25 500 10 2 4 8 0 0\nintr 1 2\n";
        assert_eq!(
            CpuTicks::parse(stat),
            Some(CpuTicks {
                idle: 1020,
                total: 1200,
                cores: 2
            })
        );
        assert_eq!(CpuTicks::parse("intr 1 2\n"), None);
        if cfg!(target_os = "linux") {
            assert!(CpuTicks::read().is_some_and(|ticks| ticks.total > ticks.idle));
        }
    }

    #[test]
    fn answers_close_their_connection_while_the_count_lasts() {
        let held = [Kept::enter(), Kept::enter()];
        assert_eq!(kept(), 2);
        set_to_move(2);
        assert!(take_one());
        assert!(take_one());
        assert!(!take_one());
        drop(held);
        assert_eq!(kept(), 0);
    }
}
