//! Certificate resolution by SNI (what the rustls resolver does on every
//! handshake) in stores of 10k and 100k certificates.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_proxy::CertStore;

const PROBES: usize = 1024;

fn resolve(c: &mut Criterion) {
    let fallback = Arc::clone(&support::certificates(1)[0].key);
    let mut group = c.benchmark_group("cert_resolve");
    for count in [10_000, 100_000] {
        let certificates = support::certificates(count);
        let store = CertStore::build(&certificates, Arc::clone(&fallback));
        let spread = support::spread(count, PROBES);
        let exact: Vec<String> = spread
            .iter()
            .map(|&i| if i % 10 == 0 { (i + 1) % count } else { i })
            .map(support::request_host)
            .collect();
        let wildcard: Vec<String> = spread
            .iter()
            .map(|&i| support::request_host(i - i % 10))
            .collect();
        let miss: Vec<String> = spread
            .iter()
            .map(|&i| format!("nobody-{i}.example.org"))
            .collect();
        for (kind, names) in [("exact", &exact), ("wildcard", &wildcard), ("miss", &miss)] {
            for name in names.iter().take(8) {
                let found = store.find(name).is_some();
                assert_eq!(found, kind != "miss", "{kind} probe {name}");
            }
            group.bench_with_input(BenchmarkId::new(kind, count), names, |b, names| {
                let mut n = 0usize;
                b.iter(|| {
                    n = (n + 1) % PROBES;
                    // What the resolver hands rustls: an owned Arc.
                    black_box(Arc::clone(store.resolve(Some(black_box(&names[n])))));
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, resolve);
criterion_main!(benches);
