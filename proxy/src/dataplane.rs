//! The shared state of the data plane and the one way to change it.
//!
//! Every change, whatever its origin (file provider, store, ACME), ends in
//! [`DataPlane::apply`] or [`DataPlane::set_managed_certificates`]: a new
//! route table and cert store are built completely, then swapped in with one
//! atomic store each. A build that fails leaves the serving state untouched.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use portcullis_config::model::{CertificateRecord, DesiredState, StaticCertificate};
use rustls::crypto::CryptoProvider;
use rustls::server::ServerConfig;

use crate::cert_store::CertStore;
use crate::certificate::LoadedCertificate;
use crate::challenge_store::ChallengeStore;
use crate::client_auth::DynamicClientAuth;
use crate::managed_certs::ManagedCertificate;
use crate::metrics::ProxyMetrics;
use crate::route_table::RouteTable;
use crate::sni_resolver::{SniResolver, ACME_TLS_ALPN};
use crate::{fallback_cert, Error};

/// Options fixed for the life of the process.
#[derive(Clone, Debug)]
pub struct DataPlaneOptions {
    /// Write one access-log line per request.
    pub access_log: bool,
    /// Port of `websecure` as clients reach it, for redirects from `web`.
    pub https_port: u16,
    /// Certificate for unknown SNI; a self-signed one is generated when `None`.
    pub fallback: Option<LoadedCertificate>,
    /// Status for a Host no router serves (404, or 403 to say "not here" plainly).
    pub unknown_host_status: http::StatusCode,
    /// Data-plane worker threads (at least 1).
    pub workers: usize,
    /// Time an HTTP/1 client gets to send a whole request head.
    pub header_read_timeout: std::time::Duration,
}

/// Parsed static certificates, kept with their source so an unchanged set is not parsed again.
#[derive(Debug, Default)]
struct StaticSet {
    source: Vec<Arc<StaticCertificate>>,
    loaded: Vec<LoadedCertificate>,
}

impl StaticSet {
    /// The set for `certificates`, parsing only what is new or changed: with
    /// thousands of files, one changed certificate costs one parse.
    fn update(
        &self,
        certificates: &[Arc<StaticCertificate>],
        provider: &CryptoProvider,
    ) -> Result<Self, Error> {
        let parsed: HashMap<&str, (&Arc<StaticCertificate>, &LoadedCertificate)> = self
            .source
            .iter()
            .zip(&self.loaded)
            .map(|(source, loaded)| (source.source.as_str(), (source, loaded)))
            .collect();
        let loaded = certificates
            .iter()
            .map(|c| match parsed.get(c.source.as_str()) {
                Some((before, loaded)) if *before == c => Ok((*loaded).clone()),
                _ => LoadedCertificate::from_pem(
                    &c.source,
                    c.chain_pem.as_bytes(),
                    c.key_pem.as_bytes(),
                    provider,
                ),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: certificates.to_vec(),
            loaded,
        })
    }
}

/// The inputs of the current route table, kept so the admin API can describe
/// exactly what is served (and so a certificate change can rebuild routes).
#[derive(Debug, Default)]
pub struct Applied {
    /// The merged desired state last applied: its services and routers (its
    /// static certificates are not kept here).
    pub state: DesiredState,
    /// Ids of the managed certificates being served.
    pub serving: HashSet<String>,
}

/// Route table, cert store and challenges, each behind an atomic pointer.
#[derive(Debug)]
pub struct DataPlane {
    routes: ArcSwap<RouteTable>,
    certs: Arc<ArcSwap<CertStore>>,
    challenges: Arc<ChallengeStore>,
    client_auth: Arc<DynamicClientAuth>,
    provider: Arc<CryptoProvider>,
    static_certs: ArcSwap<StaticSet>,
    managed_certs: ArcSwap<Vec<LoadedCertificate>>,
    /// Leaf fingerprint of each managed certificate in the cert store, by
    /// record id; stored after the store, so what it lists is served.
    managed_fingerprints: ArcSwap<HashMap<String, String>>,
    applied: ArcSwap<Applied>,
    metrics: ProxyMetrics,
    generation: AtomicU64,
    access_log: bool,
    https_port: u16,
    unknown_host_status: http::StatusCode,
    workers: usize,
    header_read_timeout: std::time::Duration,
}

impl DataPlane {
    /// An empty data plane: no routes, only the fallback certificate.
    pub fn new(options: DataPlaneOptions) -> Result<Arc<Self>, Error> {
        let provider = Arc::new(crate::default_crypto_provider());
        let fallback = match options.fallback {
            Some(cert) => cert,
            None => fallback_cert::generate(&provider)?,
        };
        Ok(Arc::new(Self {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            certs: Arc::new(ArcSwap::from_pointee(CertStore::empty(fallback.key))),
            challenges: Arc::new(ChallengeStore::default()),
            client_auth: Arc::new(DynamicClientAuth::new(Arc::clone(&provider))),
            provider,
            static_certs: ArcSwap::from_pointee(StaticSet::default()),
            managed_certs: ArcSwap::from_pointee(Vec::new()),
            managed_fingerprints: ArcSwap::from_pointee(HashMap::new()),
            applied: ArcSwap::from_pointee(Applied::default()),
            metrics: ProxyMetrics::new(options.workers.max(1)),
            generation: AtomicU64::new(0),
            access_log: options.access_log,
            https_port: options.https_port,
            unknown_host_status: options.unknown_host_status,
            workers: options.workers.max(1),
            header_read_timeout: options.header_read_timeout,
        }))
    }

    /// Builds the route table and cert store for `state` and swaps them in.
    ///
    /// Called from one task at a time (the reconciler); concurrent callers
    /// would still each install a complete state, the last one winning.
    pub fn apply(&self, state: &DesiredState) -> Result<(), Error> {
        let current_static = self.static_certs.load();
        let static_certs = if current_static.source == state.certificates {
            None
        } else {
            Some(current_static.update(&state.certificates, &self.provider)?)
        };
        let serving = self.applied.load().serving.clone();
        self.install_routes(
            // Routes only: the certificates' PEM is kept once, in static_certs.
            DesiredState {
                services: state.services.clone(),
                routers: state.routers.clone(),
                certificates: Vec::new(),
            },
            serving,
        )?;
        if let Some(static_certs) = static_certs {
            self.static_certs.store(Arc::new(static_certs));
            self.rebuild_certs();
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Replaces the certificates obtained by the ACME engine, given with
    /// their record ids; routers waiting for one of them go live (and routers
    /// whose certificate is gone stop) in the same step.
    pub fn set_managed_certificates(
        &self,
        certificates: Vec<ManagedCertificate>,
    ) -> Result<(), Error> {
        let serving: HashSet<String> = certificates.iter().map(|c| c.id.clone()).collect();
        let mut fingerprints = HashMap::with_capacity(certificates.len());
        let mut loaded = Vec::with_capacity(certificates.len());
        for managed in certificates {
            fingerprints.insert(managed.id, managed.fingerprint_sha256);
            loaded.push(managed.certificate);
        }
        self.managed_certs.store(Arc::new(loaded));
        self.rebuild_certs();
        // The store holds them now, whether or not the routes below build:
        // say so either way.
        let routes = self.route_certificates(serving);
        self.managed_fingerprints.store(Arc::new(fingerprints));
        self.generation.fetch_add(1, Ordering::Release);
        routes
    }

    /// Whether TLS clients get `record`'s current certificate now (its id
    /// and leaf fingerprint). A record turns valid, and a renewal stores its
    /// new certificate under the same id, a moment before the data plane
    /// takes it: this is what says the wait is over.
    pub fn serves(&self, record: &CertificateRecord) -> bool {
        let Some(fingerprint) = record.fingerprint_sha256.as_deref() else {
            return false;
        };
        self.managed_fingerprints
            .load()
            .get(&record.id)
            .is_some_and(|served| served.eq_ignore_ascii_case(fingerprint))
    }

    /// Rebuilds the route table when the set of served managed certificates
    /// changed: routers waiting for one go live, routers whose one is gone stop.
    fn route_certificates(&self, serving: HashSet<String>) -> Result<(), Error> {
        let applied = self.applied.load_full();
        if applied.serving == serving {
            return Ok(());
        }
        self.install_routes(applied.state.clone(), serving)
    }

    /// Builds the route table for `state` with the managed certificates
    /// `serving` and swaps it in, with what it was built from.
    fn install_routes(&self, state: DesiredState, serving: HashSet<String>) -> Result<(), Error> {
        let table = RouteTable::build(
            &state,
            &serving,
            Some(&self.routes.load()),
            &self.provider,
            self.workers,
        )?;
        self.client_auth.set_roots(table.client_roots());
        self.routes.store(Arc::new(table));
        self.applied.store(Arc::new(Applied { state, serving }));
        Ok(())
    }

    /// The state and certificates the current route table was built from.
    pub fn applied(&self) -> Guard<Arc<Applied>> {
        self.applied.load()
    }

    /// Like [`DataPlane::applied`], as an owned `Arc` to hold across awaits.
    pub fn applied_full(&self) -> Arc<Applied> {
        self.applied.load_full()
    }

    fn rebuild_certs(&self) {
        let static_certs = self.static_certs.load();
        let managed = self.managed_certs.load();
        let fallback = Arc::clone(self.certs.load().fallback());
        let store = CertStore::build(static_certs.loaded.iter().chain(managed.iter()), fallback);
        self.certs.store(Arc::new(store));
    }

    /// The current route table snapshot.
    pub fn routes(&self) -> Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// The current cert store snapshot.
    pub fn certs(&self) -> Guard<Arc<CertStore>> {
        self.certs.load()
    }

    /// Pending ACME challenges answered by the listeners.
    pub fn challenges(&self) -> &Arc<ChallengeStore> {
        &self.challenges
    }

    /// The crypto provider every TLS object here uses.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// How many times the state was swapped; tests and metrics watch it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether access-log lines are written.
    pub fn access_log(&self) -> bool {
        self.access_log
    }

    /// Counters that belong to no router.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// Appends the data plane's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let routes = self.routes.load();
        self.metrics.render(out, routes.route_metrics());
        out.push_str("# HELP portcullis_config_generation Swaps of route table and cert store.\n");
        out.push_str("# TYPE portcullis_config_generation counter\n");
        out.push_str(&format!(
            "portcullis_config_generation {}\n",
            self.generation()
        ));
    }

    /// Status for a Host no router serves.
    pub fn unknown_host_status(&self) -> http::StatusCode {
        self.unknown_host_status
    }

    /// How many worker threads serve the listeners.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Time an HTTP/1 client gets to send a whole request head.
    pub fn header_read_timeout(&self) -> std::time::Duration {
        self.header_read_timeout
    }

    /// The port `web` redirects to.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The TLS configuration of `websecure`: TLS 1.2 and 1.3, ALPN h2,
    /// http/1.1 and http/1.0 (plus `acme-tls/1` for validation), certificates
    /// by SNI from the swapped store, session tickets for resumption.
    /// `http/1.0` is listed because a client that offers only that (`curl
    /// --http1.0`) would otherwise get a fatal `no_application_protocol`
    /// alert; the HTTP/1 server answers it like any HTTP/1.0 request.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let resolver = SniResolver::new(Arc::clone(&self.certs), Arc::clone(&self.challenges));
        let provider = Arc::new(crate::server_crypto_provider(&self.provider));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::clone(&self.client_auth) as _)
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![
            b"h2".to_vec(),
            b"http/1.1".to_vec(),
            b"http/1.0".to_vec(),
            ACME_TLS_ALPN.to_vec(),
        ];
        // Our preference, not the client's: OpenSSL clients list
        // AES_256_GCM_SHA384 first, whose SHA-384 key schedule costs a full
        // handshake more than the whole X25519 exchange on CPUs where aws-lc
        // has no accelerated SHA-512 (see server_crypto_provider).
        config.ignore_client_order = true;
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
        // One ticket per handshake: a client resumes one connection per
        // ticket, and each ticket is an encryption and a record to write.
        config.send_tls13_tickets = 1;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn pem(name: &str) -> Arc<StaticCertificate> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Arc::new(StaticCertificate {
            source: format!("/certs/{name}.pem"),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A data plane with one worker, no routes and no access log.
    pub(crate) fn plane() -> Arc<DataPlane> {
        DataPlane::new(DataPlaneOptions {
            access_log: false,
            https_port: 443,
            fallback: None,
            unknown_host_status: http::StatusCode::NOT_FOUND,
            workers: 1,
            header_read_timeout: std::time::Duration::from_secs(30),
        })
        .unwrap()
    }

    /// A data plane routing `app.test` to `upstream`.
    pub(crate) fn routing(upstream: std::net::SocketAddr) -> Arc<DataPlane> {
        use portcullis_config::model::{Layer, Router, Service};
        let plane = plane();
        let mut layer = Layer::new("test");
        layer
            .services
            .insert("up".into(), Service::new("up", vec![upstream.to_string()]));
        let router = Router::new("app", vec!["app.test".into()], "up")
            .normalize()
            .unwrap();
        layer.routers.insert(router.name.clone(), router);
        plane
            .apply(&DesiredState::merge([&layer]).unwrap())
            .unwrap();
        plane
    }

    /// A client connection on `websecure`, watched for idling.
    pub(crate) fn connection_info() -> Arc<crate::handler::ConnectionInfo> {
        Arc::new(crate::handler::ConnectionInfo {
            entrypoint: portcullis_config::model::Entrypoint::Websecure,
            peer: "127.0.0.1:40000".parse().unwrap(),
            forwarded_for: http::HeaderValue::from_static("127.0.0.1"),
            sni: None,
            client_chain: None,
            client_verdicts: Default::default(),
            idle: Some(crate::idle_watch::Watch::start()),
            ending: None,
        })
    }

    fn served(plane: &DataPlane, name: &str) -> Arc<rustls::sign::CertifiedKey> {
        Arc::clone(plane.certs().resolve(Some(name)))
    }

    fn managed(id: &str, name: &str) -> ManagedCertificate {
        let source = pem(name);
        let certificate = LoadedCertificate::from_pem(
            id,
            source.chain_pem.as_bytes(),
            source.key_pem.as_bytes(),
            &crate::default_crypto_provider(),
        )
        .unwrap();
        let leaf = certificate.key.end_entity_cert().unwrap();
        ManagedCertificate {
            id: id.to_owned(),
            fingerprint_sha256: portcullis_acme::fingerprint_sha256(leaf),
            certificate,
        }
    }

    fn record(id: &str, fingerprint: Option<&str>) -> CertificateRecord {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "common_name": "a.test",
            "issuer": "internal-ca",
            "challenge_type": "http-01",
            "status": "valid",
            "fingerprint_sha256": fingerprint,
            "created_at": 0,
            "updated_at": 0,
        }))
        .unwrap()
    }

    #[test]
    fn serves_names_the_certificate_a_client_gets_not_only_the_record_id() {
        let plane = plane();
        let issued = managed("cert-1", "a.test");
        let renewed = managed("cert-1", "a.test");
        let first = issued.fingerprint_sha256.clone();
        let second = renewed.fingerprint_sha256.clone();
        assert!(
            !plane.serves(&record("cert-1", Some(&first))),
            "nothing is loaded yet"
        );

        plane
            .set_managed_certificates(vec![issued.clone()])
            .unwrap();
        assert!(plane.serves(&record("cert-1", Some(&first))));
        assert!(
            plane.serves(&record("cert-1", Some(&first.to_ascii_uppercase()))),
            "hex case does not matter"
        );
        assert_eq!(served(&plane, "a.test").cert, issued.certificate.key.cert);
        // The record already holds its renewal; the data plane has the old one.
        assert!(!plane.serves(&record("cert-1", Some(&second))));
        assert!(
            !plane.serves(&record("cert-2", Some(&first))),
            "another record"
        );
        assert!(!plane.serves(&record("cert-1", None)), "not issued");

        plane
            .set_managed_certificates(vec![renewed.clone()])
            .unwrap();
        assert!(plane.serves(&record("cert-1", Some(&second))));
        assert!(!plane.serves(&record("cert-1", Some(&first))));
        assert_eq!(served(&plane, "a.test").cert, renewed.certificate.key.cert);

        plane.set_managed_certificates(Vec::new()).unwrap();
        assert!(
            !plane.serves(&record("cert-1", Some(&second))),
            "revoked or expired"
        );
    }

    #[test]
    fn unchanged_static_certificates_are_not_parsed_again_and_changed_ones_are() {
        let plane = plane();
        let mut state = DesiredState {
            certificates: vec![pem("a.test"), pem("b.test")],
            ..DesiredState::default()
        };
        plane.apply(&state).unwrap();
        let a_before = served(&plane, "a.test");
        let b_before = served(&plane, "b.test");

        // Same file, new content (a renewal written in place).
        state.certificates[1] = Arc::new(StaticCertificate {
            source: state.certificates[1].source.clone(),
            ..(*pem("b.test")).clone()
        });
        state.certificates.push(pem("c.test"));
        plane.apply(&state).unwrap();
        assert!(
            Arc::ptr_eq(&a_before, &served(&plane, "a.test")),
            "an unchanged file keeps its parsed certificate"
        );
        let b_after = served(&plane, "b.test");
        assert!(!Arc::ptr_eq(&b_before, &b_after));
        assert_ne!(b_before.cert, b_after.cert, "the new content is served");
        let c = served(&plane, "c.test");
        assert!(
            !Arc::ptr_eq(&c, &served(&plane, "unknown.test")),
            "c.test has its own certificate"
        );
    }
}
