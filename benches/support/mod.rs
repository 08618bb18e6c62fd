//! Fixtures shared by the criterion benches: synthetic desired states and
//! certificate sets of any size, built through the public APIs only.
//!
//! Each bench target includes this module with `mod support;` and uses only
//! part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use portcullis_config::model::{DesiredState, Router, Service, StaticCertificate};
use portcullis_proxy::{
    default_crypto_provider, self_signed, CryptoProvider, DataPlane, DataPlaneOptions,
    LoadedCertificate, RouteTable,
};
use rcgen::{CertificateParams, KeyPair};

/// The allocator the `portcullis` binary ships with, so that what allocates
/// costs here what it costs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Path prefixes every host gets, one router each: the lookup has to pick the
/// longest matching one.
pub(crate) const PREFIXES: [&str; 3] = ["/", "/api", "/api/v2"];

/// One host in ten is a wildcard (`*.tenant-N.example.net`).
const WILDCARD_EVERY: usize = 10;

/// Services the routers share: few, as in a real deployment, and building
/// one creates a connection pool, which is not what these benches measure.
const SERVICES: usize = 16;

/// The crypto provider the proxy uses (aws-lc-rs).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_crypto_provider())
}

/// The host pattern of host number `i`: exact, or every tenth a wildcard.
pub(crate) fn host_pattern(i: usize) -> String {
    if i % WILDCARD_EVERY == 0 {
        format!("*.tenant-{i}.example.net")
    } else {
        format!("host-{i}.example.com")
    }
}

/// A concrete request host served by host number `i` (for a wildcard, one
/// label in front of its parent).
pub(crate) fn request_host(i: usize) -> String {
    if i % WILDCARD_EVERY == 0 {
        format!("app.tenant-{i}.example.net")
    } else {
        format!("host-{i}.example.com")
    }
}

/// A desired state with `hosts` hosts, each with one router per entry of
/// [`PREFIXES`] (so `3 × hosts` routers), spread over a few services.
///
/// `generation` is appended to the name of one extra router so that two
/// states of different generations differ (a swap, not a no-op).
pub(crate) fn state(hosts: usize, generation: u64) -> DesiredState {
    let mut services = BTreeMap::new();
    for s in 0..SERVICES {
        let name = format!("svc-{s}");
        let port = 10_000 + u16::try_from(s).unwrap_or(0);
        services.insert(
            name.clone(),
            Service::new(name, vec![format!("127.0.0.1:{port}")]),
        );
    }
    let mut routers = BTreeMap::new();
    for i in 0..hosts {
        for (p, prefix) in PREFIXES.iter().enumerate() {
            let name = format!("r-{i}-{p}");
            let mut router = Router::new(
                name.clone(),
                vec![host_pattern(i)],
                format!("svc-{}", (i + p) % SERVICES),
            );
            router.path_prefix = (*prefix).to_owned();
            routers.insert(name, router);
        }
    }
    let name = format!("swapped-{generation}");
    routers.insert(
        name.clone(),
        Router::new(
            name,
            vec![format!("swapped-{generation}.example.org")],
            "svc-0",
        ),
    );
    DesiredState {
        services,
        routers,
        certificates: Vec::new(),
    }
}

/// A route table built from [`state`].
pub(crate) fn table(hosts: usize) -> RouteTable {
    RouteTable::build(&state(hosts, 0), &HashSet::new(), None, &provider(), 2)
        .expect("the synthetic state is valid")
}

/// `count` served certificates: a handful of real ECDSA P-256 certificates
/// (each with its own key) cloned with different names, so that a store of
/// 100k is built in seconds rather than minutes. Every tenth covers a
/// wildcard, the rest one exact name each, named as [`host_pattern`] names
/// hosts.
///
/// The store indexes by `names`; sharing the `CertifiedKey` behind an `Arc`
/// does not change what a lookup or a build costs, only the memory a real
/// set of distinct certificates would take (measured by the load harness).
pub(crate) fn certificates(count: usize) -> Vec<LoadedCertificate> {
    const DISTINCT: usize = 8;
    let provider = provider();
    let templates: Vec<LoadedCertificate> = (0..DISTINCT)
        .map(|i| {
            let name = format!("template-{i}.example.com");
            self_signed(&name, &[name.as_str()], &provider).expect("rcgen makes a certificate")
        })
        .collect();
    (0..count)
        .map(|i| {
            let mut cert = templates[i % DISTINCT].clone();
            cert.names = vec![host_pattern(i)];
            cert.not_after += i64::try_from(i % 7).unwrap_or(0);
            cert
        })
        .collect()
}

/// `count` distinct certificates as PEM, as the file provider hands them to
/// [`DataPlane::apply`]: each signed for its own name, all with one shared
/// key (key generation is not what is measured; parsing and loading are).
pub(crate) fn static_certificates(count: usize) -> Vec<StaticCertificate> {
    let key = KeyPair::generate().expect("rcgen generates a P-256 key");
    let key_pem = key.serialize_pem();
    (0..count)
        .map(|i| {
            let name = request_host(i);
            let params =
                CertificateParams::new(vec![name.clone()]).expect("a valid synthetic name");
            let cert = params.self_signed(&key).expect("rcgen signs");
            StaticCertificate {
                source: format!("bench/{name}.pem"),
                chain_pem: cert.pem(),
                key_pem: key_pem.clone(),
            }
        })
        .collect()
}

/// A data plane with no access log and a generated fallback certificate.
pub(crate) fn data_plane() -> Arc<DataPlane> {
    DataPlane::new(DataPlaneOptions {
        access_log: false,
        https_port: 8443,
        fallback: None,
        unknown_host_status: http::StatusCode::NOT_FOUND,
        workers: 2,
        header_read_timeout: std::time::Duration::from_secs(30),
    })
    .expect("a data plane with a generated fallback")
}

/// `count` indices spread over `0..hosts` (a fixed LCG, so every run probes
/// the same keys), to keep big tables from being measured cache-hot on one key.
pub(crate) fn spread(hosts: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..count)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(x >> 33).unwrap_or(0) % hosts
        })
        .collect()
}
