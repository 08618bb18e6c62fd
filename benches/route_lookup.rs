//! Route lookup: host (exact, then wildcard parent) and longest path prefix,
//! in tables of 10, 10k and 100k hosts with three path prefixes each.
//!
//! Issue 7's target: under 100 ns per lookup at 100k hosts.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_config::model::Entrypoint;

/// Probe keys cycled through per size, so a big table is not measured with
/// one hot cache line.
const PROBES: usize = 1024;

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for hosts in [10, 10_000, 100_000] {
        let table = support::table(hosts);
        let spread = support::spread(hosts, PROBES);
        // Exact hosts (skipping the wildcard ones), deepest prefix.
        let exact: Vec<(String, &str)> = spread
            .iter()
            .map(|&i| if i % 10 == 0 { (i + 1) % hosts } else { i })
            .map(|i| (support::request_host(i), "/api/v2/users/42"))
            .collect();
        // Wildcard hosts: the exact map misses, the parent hits; root prefix.
        let wildcard: Vec<(String, &str)> = spread
            .iter()
            .map(|&i| (support::request_host(i - i % 10), "/index.html"))
            .collect();
        // Unknown hosts: both maps miss (the 404 path).
        let miss: Vec<(String, &str)> = spread
            .iter()
            .map(|&i| (format!("nobody-{i}.example.org"), "/"))
            .collect();
        for (kind, keys) in [("exact", &exact), ("wildcard", &wildcard), ("miss", &miss)] {
            let expect_hit = kind != "miss";
            for (host, path) in keys.iter().take(8) {
                assert_eq!(
                    table.lookup(Entrypoint::Websecure, host, path).is_some(),
                    expect_hit,
                    "{kind} probe {host}{path}"
                );
            }
            group.bench_with_input(BenchmarkId::new(kind, hosts), keys, |b, keys| {
                let mut n = 0usize;
                b.iter(|| {
                    n = (n + 1) % PROBES;
                    let (host, path) = &keys[n];
                    black_box(table.lookup(Entrypoint::Websecure, black_box(host), path));
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
