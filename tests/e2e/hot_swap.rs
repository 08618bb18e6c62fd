//! Zero failed requests while the route table and cert store are swapped
//! hundreds of times under continuous HTTPS traffic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_config::model::{DesiredState, Layer, Router, Service, StaticCertificate};

use crate::support::inproc::InProcess;
use crate::support::*;

const SWAPS: usize = 501;
/// Upper bound on requests per worker, so the loop is bounded even if swaps stall.
const MAX_REQUESTS_PER_WORKER: usize = 20_000;
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn state(upstream: &str, cert: &crate::support::pki::Issued, tag: &str) -> DesiredState {
    let mut layer = Layer::new("test");
    layer
        .services
        .insert("app".into(), Service::new("app", vec![upstream.to_owned()]));
    let router = Router::new("app", vec!["app.test".into()], "app")
        .normalize()
        .unwrap();
    layer.routers.insert("app".into(), router);
    layer
        .certificates
        .push(std::sync::Arc::new(StaticCertificate {
            source: tag.into(),
            chain_pem: cert.cert_pem.clone(),
            key_pem: cert.key_pem.clone(),
        }));
    DesiredState::merge([&layer]).unwrap()
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, what: &str, outcome: anyhow::Result<Reply>) {
        match outcome {
            Ok(reply) if reply.status == 200 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(reply) => self.fail(format!("{what}: status {} {}", reply.status, reply.body)),
            Err(error) => self.fail(format!("{what}: {error:#}")),
        }
    }

    fn fail(&self, message: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 10 {
            errors.push(message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_swaps_under_traffic_fail_no_request() {
    let pki = Pki::new("Test CA");
    let cert_a = pki.server(&["app.test"]);
    let cert_b = pki.server(&["app.test"]);
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let state_a = state(&a.upstream(), &cert_a, "a.pem");
    let state_b = state(&b.upstream(), &cert_b, "b.pem");
    let proxy = InProcess::start().await;
    proxy.plane.apply(&state_a).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let h1 = pki.client_config(&[b"http/1.1"], None);
    let h2 = pki.client_config(&[b"h2"], None);
    let addr = proxy.websecure;
    let mut workers = Vec::new();
    for (name, config, keep_alive) in [
        ("h1 keep-alive", h1.clone(), true),
        ("h1 new connection", h1, false),
        ("h2 keep-alive", h2.clone(), true),
        ("h2 new connection", h2, false),
    ] {
        let tally = Arc::new(Tally::default());
        let done = Arc::clone(&done);
        let worker_tally = Arc::clone(&tally);
        workers.push((
            name,
            tally,
            tokio::spawn(async move {
                let mut conn = None;
                for _ in 0..MAX_REQUESTS_PER_WORKER {
                    if done.load(Ordering::Relaxed) || started.elapsed() > TIME_LIMIT {
                        break;
                    }
                    if conn.is_none() || !keep_alive {
                        match Conn::https(addr, "app.test", config.clone()).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                worker_tally.fail(format!("{name} connect: {e:#}"));
                                continue;
                            }
                        }
                    }
                    let c = conn.as_mut().unwrap();
                    worker_tally.record(name, c.get("app.test", "/").await);
                }
            }),
        ));
    }
    // Multiplexed h2 streams on one shared connection, four at a time.
    let shared_tally = Arc::new(Tally::default());
    let shared = {
        let done = Arc::clone(&done);
        let tally = Arc::clone(&shared_tally);
        let config = pki.client_config(&[b"h2"], None);
        tokio::spawn(async move {
            let conn = Conn::https(addr, "app.test", config).await.unwrap();
            let conn = Arc::new(tokio::sync::Mutex::new(conn));
            for _ in 0..MAX_REQUESTS_PER_WORKER / 4 {
                if done.load(Ordering::Relaxed) || started.elapsed() > TIME_LIMIT {
                    break;
                }
                let mut batch = Vec::new();
                for _ in 0..4 {
                    let conn = Arc::clone(&conn);
                    batch.push(tokio::spawn(async move {
                        conn.lock().await.get("app.test", "/").await
                    }));
                }
                for handle in batch {
                    tally.record("h2 multiplexed", handle.await.unwrap());
                }
            }
        })
    };

    // Let traffic start, then swap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let generation_before = proxy.plane.generation();
    for i in 0..SWAPS {
        let next = if i % 2 == 0 { &state_b } else { &state_a };
        proxy.plane.apply(next).unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(proxy.plane.generation() - generation_before, SWAPS as u64);
    // Traffic continues a little after the last swap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, Ordering::Relaxed);
    shared.await.unwrap();

    let mut report = Vec::new();
    let mut failed = shared_tally.failed.load(Ordering::Relaxed);
    report.push(format!(
        "h2 multiplexed: ok {}",
        shared_tally.ok.load(Ordering::Relaxed)
    ));
    for (name, tally, handle) in workers {
        handle.await.unwrap();
        let ok = tally.ok.load(Ordering::Relaxed);
        failed += tally.failed.load(Ordering::Relaxed);
        report.push(format!(
            "{name}: ok {ok}, errors {:?}",
            tally.errors.lock().unwrap()
        ));
        assert!(
            ok >= 20,
            "{name} made too few requests to mean anything: {ok}"
        );
    }
    assert_eq!(failed, 0, "failed requests during swaps: {report:#?}");
    assert!(a.hits.load(Ordering::Relaxed) > 0 && b.hits.load(Ordering::Relaxed) > 0);

    // SWAPS is odd: the last state is B. New requests and new handshakes see it.
    let b_hits = b.hits.load(Ordering::Relaxed);
    let mut conn = Conn::https(addr, "app.test", pki.client_config(&[b"http/1.1"], None))
        .await
        .unwrap();
    let served = conn.peer_certificate.clone().unwrap();
    let expected_b = rustls::pki_types::pem::PemObject::from_pem_slice(cert_b.cert_pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c);
    assert_eq!(
        served,
        expected_b.unwrap(),
        "new handshakes get the certificate of the last state"
    );
    assert_eq!(conn.get("app.test", "/").await.unwrap().backend(), "b");
    assert!(b.hits.load(Ordering::Relaxed) > b_hits);
    proxy.stop().await;
}
