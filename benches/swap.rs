//! Building and swapping the data plane's state off the request path: a
//! 10k-router route table and a 10k-certificate store.
//!
//! Issue 7's target: a 10k-certificate swap under 20 ms.

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

mod support;

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use portcullis_proxy::{CertStore, ManagedCertificate, RouteTable};

const SIZE: usize = 10_000;

/// Route table: the build alone, and `DataPlane::apply` (build, swap, and
/// keeping the applied state), alternating between two states so each call
/// is a real change.
fn routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("swap_routes_10k");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    let provider = support::provider();
    let states = [support::state(SIZE, 0), support::state(SIZE, 1)];
    let serving = HashSet::new();
    let previous =
        RouteTable::build(&states[0], &serving, None, &provider, 2).expect("valid state");
    group.bench_function("route_table_build", |b| {
        b.iter(|| {
            black_box(
                RouteTable::build(&states[1], &serving, Some(&previous), &provider, 2)
                    .expect("valid state"),
            )
        });
    });
    let plane = support::data_plane();
    plane.apply(&states[0]).expect("valid state");
    let mut n = 0usize;
    group.bench_function("dataplane_apply", |b| {
        b.iter(|| {
            n += 1;
            plane.apply(&states[n % 2]).expect("valid state");
        });
    });
    group.finish();
}

/// Cert store: the build alone; `DataPlane::set_managed_certificates` (how
/// ACME-managed certificates are swapped in: parsed already, build and swap);
/// and `DataPlane::apply` with 10k static PEM certificates of which one
/// changed, the file provider's path, which parses only the changed one.
fn certs(c: &mut Criterion) {
    let mut group = c.benchmark_group("swap_certs_10k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let certificates = support::certificates(SIZE);
    let fallback = Arc::clone(&certificates[0].key);
    group.bench_function("cert_store_build", |b| {
        b.iter(|| black_box(CertStore::build(&certificates, Arc::clone(&fallback))));
    });

    let plane = support::data_plane();
    let managed: Vec<ManagedCertificate> = certificates
        .iter()
        .enumerate()
        .map(|(i, c)| ManagedCertificate {
            id: format!("cert-{i}"),
            fingerprint_sha256: portcullis_acme::fingerprint_sha256(
                c.key.end_entity_cert().expect("a leaf"),
            ),
            certificate: c.clone(),
        })
        .collect();
    plane
        .set_managed_certificates(managed.clone())
        .expect("valid certificates");
    group.bench_function("dataplane_set_managed", |b| {
        b.iter_batched(
            || managed.clone(),
            |managed| plane.set_managed_certificates(managed).expect("valid"),
            BatchSize::LargeInput,
        );
    });

    // Two readings of the same 10k files, one of which changed: separate
    // copies, as when the file holding them all is read again, so unchanged
    // certificates are recognised by content, not by pointer.
    let pem = support::static_certificates(SIZE);
    let mut states = [support::state(10, 0), support::state(10, 0)];
    states[0].certificates = pem.iter().cloned().map(Arc::new).collect();
    states[1].certificates = pem.into_iter().map(Arc::new).collect();
    Arc::make_mut(&mut states[1].certificates[0])
        .source
        .push_str(".renewed");
    let plane = support::data_plane();
    plane.apply(&states[0]).expect("valid state");
    assert_eq!(plane.certs().len(), SIZE);
    let mut n = 0usize;
    group.bench_function("dataplane_apply_static_pem", |b| {
        b.iter(|| {
            n += 1;
            plane.apply(&states[n % 2]).expect("valid state");
        });
    });
    group.finish();
}

criterion_group!(benches, routes, certs);
criterion_main!(benches);
