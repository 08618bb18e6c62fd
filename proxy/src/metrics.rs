//! Data-plane counters: plain atomics bumped on the request path, read only
//! when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use portcullis_config::histogram::{label, Histogram};

/// Index of a status class: 1xx → 0 … 5xx → 4.
fn class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Responses by status class.
#[derive(Debug, Default)]
pub struct StatusCounts([AtomicU64; 5]);

impl StatusCounts {
    /// Counts one response.
    pub fn record(&self, status: u16) {
        self.0[class(status)].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, labels: &str) {
        for (name, count) in CLASSES.iter().zip(&self.0) {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "portcullis_requests_total{{{labels}status=\"{name}\"}} {count}"
                );
            }
        }
    }
}

/// One router's counters; kept across table swaps while the router exists.
///
/// Each worker thread counts in its own shard (see [`crate::worker`]): a
/// counter that two cores bump on every request moves its cache line back
/// and forth between them, which costs more than the increment.
#[derive(Debug)]
pub struct RouteMetrics {
    shards: Box<[Shard]>,
}

/// A cache line (or two) of its own per worker.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    responses: StatusCounts,
    upstream_latency: Histogram,
}

impl RouteMetrics {
    /// Counters for `workers` data-plane workers (plus one shard for other threads).
    pub fn new(workers: usize) -> Self {
        Self {
            shards: (0..=workers).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self) -> &Shard {
        let shards = &self.shards;
        &shards[crate::worker::slot() % shards.len()]
    }

    /// Counts one response.
    pub fn record_response(&self, status: u16) {
        self.shard().responses.record(status);
    }

    /// Records the time to the upstream's response head.
    pub fn observe_upstream(&self, latency: std::time::Duration) {
        self.shard().upstream_latency.observe(latency);
    }

    /// Responses of every shard, by status class.
    fn responses(&self) -> StatusCounts {
        let total = StatusCounts::default();
        for shard in self.shards.iter() {
            for (sum, count) in total.0.iter().zip(&shard.responses.0) {
                sum.fetch_add(count.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        total
    }

    /// Upstream latency of every shard.
    fn upstream_latency(&self) -> Histogram {
        let total = Histogram::default();
        for shard in self.shards.iter() {
            total.absorb(&shard.upstream_latency);
        }
        total
    }
}

/// Counters that belong to no router.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    /// Completed TLS handshakes.
    pub handshakes: AtomicU64,
    /// Failed or timed-out TLS handshakes.
    pub handshake_failures: AtomicU64,
    /// Responses to requests no router matched.
    pub unrouted: StatusCounts,
    /// Connections accepted, per worker: shows how many workers take new
    /// connections (see the proxy's `accept_gate`).
    accepted: Box<[WorkerCount]>,
    /// Keep-alive clients asked to reconnect, per worker: a saturated
    /// worker moving load to others (see the proxy's `shedding`).
    moved: Box<[WorkerCount]>,
}

/// One worker's count, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct WorkerCount(AtomicU64);

impl WorkerCount {
    /// Counts one for the current worker (see [`crate::worker`]).
    fn count(counts: &[Self]) {
        let worker = crate::worker::slot().checked_sub(1);
        if let Some(count) = worker.and_then(|index| counts.get(index)) {
            count.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(counts: &[Self], out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (worker, count) in counts.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\"}} {}",
                count.0.load(Ordering::Relaxed)
            );
        }
    }
}

impl ProxyMetrics {
    /// Counters for `workers` data-plane workers.
    pub fn new(workers: usize) -> Self {
        Self {
            accepted: (0..workers).map(|_| WorkerCount::default()).collect(),
            moved: (0..workers).map(|_| WorkerCount::default()).collect(),
            ..Self::default()
        }
    }

    /// The current worker accepted a connection (see [`crate::worker`]).
    pub(crate) fn count_accepted(&self) {
        WorkerCount::count(&self.accepted);
    }

    /// The current worker asked a keep-alive client to reconnect.
    pub(crate) fn count_moved(&self) {
        WorkerCount::count(&self.moved);
    }

    /// Renders these counters and every router's.
    pub(crate) fn render<'a>(
        &self,
        out: &mut String,
        routes: impl Iterator<Item = (&'a str, &'a RouteMetrics)>,
    ) {
        out.push_str(
            "# HELP portcullis_tls_handshakes_total TLS handshakes on websecure by outcome.\n",
        );
        out.push_str("# TYPE portcullis_tls_handshakes_total counter\n");
        let _ = writeln!(
            out,
            "portcullis_tls_handshakes_total{{outcome=\"ok\"}} {}",
            self.handshakes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "portcullis_tls_handshakes_total{{outcome=\"failed\"}} {}",
            self.handshake_failures.load(Ordering::Relaxed)
        );
        WorkerCount::render(
            &self.accepted,
            out,
            "portcullis_connections_accepted_total",
            "Client connections accepted, by worker thread.",
        );
        WorkerCount::render(
            &self.moved,
            out,
            "portcullis_clients_moved_total",
            "Keep-alive clients asked to reconnect by a saturated worker thread, by worker.",
        );
        out.push_str("# HELP portcullis_requests_total Responses by router and status class.\n");
        out.push_str("# TYPE portcullis_requests_total counter\n");
        self.unrouted.render(out, "router=\"\",");
        let mut latencies = String::new();
        for (router, metrics) in routes {
            let router = label(router);
            metrics
                .responses()
                .render(out, &format!("router=\"{router}\","));
            metrics.upstream_latency().render(
                &mut latencies,
                "portcullis_upstream_duration_seconds",
                &format!("router=\"{router}\""),
            );
        }
        out.push_str(
            "# HELP portcullis_upstream_duration_seconds Time to the upstream's response head.\n",
        );
        out.push_str("# TYPE portcullis_upstream_duration_seconds histogram\n");
        out.push_str(&latencies);
    }
}
