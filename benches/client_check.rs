//! A request on an mTLS route: the connection's client chain checked against
//! the route's CA, verified outright (every request, before) or through the
//! verdict the connection keeps (the handler now).

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_proxy::bench_support::ClientCheck;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// A CA and a client certificate it issued (ECDSA P-256, as a client-CA
/// setup made with rcgen or `openssl req` would have).
fn chain() -> (
    rustls_pki_types::CertificateDer<'static>,
    Vec<rustls_pki_types::CertificateDer<'static>>,
) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench client CA");
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let client_key = KeyPair::generate().expect("a client key");
    let mut client_params = CertificateParams::new(Vec::new()).expect("client parameters");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench client");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("a client certificate");
    (ca.der().clone(), vec![client.der().clone()])
}

fn client_check(c: &mut Criterion) {
    let (ca, chain) = chain();
    let check = ClientCheck::new(ca, chain).expect("a route verifier");
    assert!(check.verify(), "the client chain verifies against its CA");
    assert!(check.kept());
    let mut group = c.benchmark_group("client_check");
    group.bench_function("verify_per_request", |b| {
        b.iter(|| black_box(check.verify()))
    });
    group.bench_function("kept_verdict", |b| b.iter(|| black_box(check.kept())));
    group.finish();
}

criterion_group!(benches, client_check);
criterion_main!(benches);
