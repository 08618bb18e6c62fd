//! The Portcullis data plane.
//!
//! Two listeners (`web`, `websecure`) terminate TLS with a certificate chosen
//! by SNI, route each request by host and path, and forward it to a pooled
//! upstream. All of the state they read — [`RouteTable`], [`CertStore`],
//! [`ChallengeStore`] — lives in the [`DataPlane`] behind atomic pointers:
//! every change is built off the request path and swapped in whole, so
//! requests never wait on a lock and never see half a change.

mod accept_gate;
mod access_log;
mod cert_store;
mod certificate;
mod challenge_store;
mod client_auth;
mod client_verdicts;
mod close_notify;
mod dataplane;
mod date;
mod error;
mod fallback_cert;
mod forward;
mod h1;
mod h1_server;
mod h2_server;
mod handler;
mod headers;
mod idle_watch;
mod late_tickets;
mod listener;
mod managed_certs;
mod metrics;
mod plain_request;
mod pool;
mod reconciler;
mod route_plan;
mod route_table;
mod shedding;
mod sni_resolver;
mod span;
mod upstream;
mod worker;

pub use access_log::TARGET as ACCESS_LOG_TARGET;
pub use cert_store::CertStore;
pub use certificate::{leaf_names, LoadedCertificate};
pub use challenge_store::ChallengeStore;
pub use dataplane::{Applied, DataPlane, DataPlaneOptions};
pub use error::Error;
pub use fallback_cert::{self_signed, FALLBACK_COMMON_NAME};
pub use handler::{ACME_CHALLENGE_PREFIX, LOCAL_ANSWER};
pub use headers::{CLIENT_SUBJECT, TENANT};
pub use listener::Listeners;
pub use managed_certs::{
    load as load_managed_certificates, spawn_feed as spawn_certificate_feed, ManagedCertificate,
};
pub use metrics::{ProxyMetrics, RouteMetrics};
pub use reconciler::Reconciler;
pub use route_plan::{plan as plan_routes, PlannedRoute};
pub use route_table::{Route, RouteTable};
pub use sni_resolver::ACME_TLS_ALPN;

pub use rustls::crypto::CryptoProvider;

/// The crypto provider Portcullis uses everywhere: aws-lc-rs.
pub fn default_crypto_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The provider `websecure` negotiates with: aws-lc-rs with the cipher
/// suites in the server's order of preference.
///
/// AES-128-GCM first: it is as safe as AES-256 for TLS's purposes, runs on
/// AES-NI, and its SHA-256 key schedule runs on the SHA extensions, where
/// aws-lc's SHA-384 falls back to generic code on many CPUs. ChaCha20 comes
/// next, for clients without AES hardware, then the AES-256 suites.
pub fn server_crypto_provider(base: &CryptoProvider) -> CryptoProvider {
    use rustls::CipherSuite as Suite;
    const ORDER: [Suite; 9] = [
        Suite::TLS13_AES_128_GCM_SHA256,
        Suite::TLS13_CHACHA20_POLY1305_SHA256,
        Suite::TLS13_AES_256_GCM_SHA384,
        Suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        Suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        Suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        Suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        Suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        Suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    let mut provider = base.clone();
    // Suites not named above keep their relative order, after those named.
    provider.cipher_suites.sort_by_key(|suite| {
        ORDER
            .iter()
            .position(|named| *named == suite.suite())
            .unwrap_or(ORDER.len())
    });
    provider
}

/// Internals the criterion benches in `benches/` measure; not a stable API.
///
/// Each function calls the data plane's own code, so a bench measures
/// exactly what a request costs.
#[doc(hidden)]
pub mod bench_support {
    use http::HeaderValue;

    /// The client address as the forwarder sends it, formatted once per
    /// connection.
    pub fn forwarded_for(client_ip: std::net::IpAddr) -> HeaderValue {
        crate::headers::forwarded_for(client_ip)
    }

    /// What the forwarder does with every request head: write the
    /// upstream's from the client's, with hop-by-hop fields left out and
    /// `Host` and `X-Forwarded-*` set (no upgrade, no client certificate,
    /// no route headers), into a buffer kept between requests.
    pub fn encode_request_head(
        parts: &http::request::Parts,
        forwarded_for: &HeaderValue,
        proto: &'static str,
        host: &HeaderValue,
        out: &mut Vec<u8>,
    ) {
        let rewrite = crate::headers::RequestRewrite::new(
            crate::headers::connection_values(&parts.headers),
            false,
            crate::headers::Forwarded {
                forwarded_for,
                proto: HeaderValue::from_static(proto),
                host,
                client_subject: None,
            },
            &[],
        );
        crate::h1::encode_request(parts, &rewrite, crate::h1::RequestFraming::Empty, out);
    }

    /// A request on an mTLS route checking the connection's client chain
    /// against the route's CA: verified outright, or through the
    /// connection's kept verdicts as the handler does.
    pub struct ClientCheck {
        verifier: std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>,
        chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        verdicts:
            crate::client_verdicts::ClientVerdicts<dyn rustls::server::danger::ClientCertVerifier>,
    }

    impl ClientCheck {
        /// A route whose client CA is `ca` and a connection that presented `chain`.
        pub fn new(
            ca: rustls_pki_types::CertificateDer<'static>,
            chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        ) -> Option<Self> {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).ok()?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                std::sync::Arc::new(crate::default_crypto_provider()),
            )
            .allow_unauthenticated()
            .build()
            .ok()?;
            Some(Self {
                verifier,
                chain,
                verdicts: Default::default(),
            })
        }

        /// Chain building, signature checks and the subject: what every
        /// request cost before verdicts were kept.
        pub fn verify(&self) -> bool {
            crate::handler::verified_subject(&*self.verifier, &self.chain).is_some()
        }

        /// The handler's check: the connection's kept verdict, verified on
        /// the first request only.
        pub fn kept(&self) -> bool {
            self.verdicts
                .subject(&self.verifier, || {
                    crate::handler::verified_subject(&*self.verifier, &self.chain)
                })
                .is_some()
        }
    }

    /// What the forwarder does with every upstream response head: parse it
    /// from the read buffer, dropping hop-by-hop fields on the way, with
    /// the scratch space a connection keeps between responses.
    #[derive(Debug, Default)]
    pub struct ResponseHeadParser {
        fields: Vec<crate::span::Field>,
    }

    impl ResponseHeadParser {
        /// Parses the head at the front of `buf` (removing it); returns the
        /// number of header fields kept, or `None` when it is incomplete or
        /// invalid.
        pub fn parse(&mut self, buf: &mut bytes::BytesMut) -> Option<usize> {
            let head = crate::h1::parse_response(
                buf,
                &http::Method::GET,
                &mut self.fields,
                crate::h1::FieldsAs::Map,
            );
            Some(head.ok()??.parts.headers.len())
        }
    }
}
