//! The shared state of the data plane and the one way to change it.
//!
//! Every change, whatever its origin (file provider, store, ACME), ends in
//! [`DataPlane::apply`] or [`DataPlane::set_managed_certificates`]: a new
//! route table and cert store are built completely, then swapped in with one
//! atomic store each. A build that fails leaves the serving state untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use portcullis_config::model::{DesiredState, StaticCertificate};
use rustls::crypto::CryptoProvider;
use rustls::server::ServerConfig;

use crate::cert_store::CertStore;
use crate::certificate::LoadedCertificate;
use crate::challenge_store::ChallengeStore;
use crate::client_auth::DynamicClientAuth;
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
}

/// Parsed static certificates, kept with their source so an unchanged set is not parsed again.
#[derive(Debug, Default)]
struct StaticSet {
    source: Vec<StaticCertificate>,
    loaded: Vec<LoadedCertificate>,
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
    generation: AtomicU64,
    access_log: bool,
    https_port: u16,
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
            generation: AtomicU64::new(0),
            access_log: options.access_log,
            https_port: options.https_port,
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
            let loaded = state
                .certificates
                .iter()
                .map(|c| {
                    LoadedCertificate::from_pem(
                        &c.source,
                        c.chain_pem.as_bytes(),
                        c.key_pem.as_bytes(),
                        &self.provider,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(StaticSet {
                source: state.certificates.clone(),
                loaded,
            })
        };
        let table = RouteTable::build(state, Some(&self.routes.load()), &self.provider)?;
        self.client_auth.set_roots(table.client_roots());
        self.routes.store(Arc::new(table));
        if let Some(static_certs) = static_certs {
            self.static_certs.store(Arc::new(static_certs));
            self.rebuild_certs();
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Replaces the certificates obtained by the ACME engine.
    pub fn set_managed_certificates(&self, certificates: Vec<LoadedCertificate>) {
        self.managed_certs.store(Arc::new(certificates));
        self.rebuild_certs();
        self.generation.fetch_add(1, Ordering::Release);
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

    /// The port `web` redirects to.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The TLS configuration of `websecure`: TLS 1.2 and 1.3, ALPN h2 and
    /// http/1.1 (plus `acme-tls/1` for validation), certificates by SNI from
    /// the swapped store, session tickets for resumption.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let resolver = SniResolver::new(Arc::clone(&self.certs), Arc::clone(&self.challenges));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(Arc::clone(&self.client_auth) as _)
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
        Ok(Arc::new(config))
    }
}
