//! Picks the certificate for each TLS handshake on `websecure`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::cert_store::CertStore;
use crate::challenge_store::ChallengeStore;

/// RFC 8737 §6.2: the ALPN protocol an ACME server offers for TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Resolves by SNI from the current [`CertStore`] snapshot, or from the
/// challenge store for ACME validation handshakes. Lock-free: one atomic load.
#[derive(Debug)]
pub(crate) struct SniResolver {
    certs: Arc<ArcSwap<CertStore>>,
    challenges: Arc<ChallengeStore>,
}

impl SniResolver {
    /// A resolver over the shared cert store and challenge store.
    pub(crate) fn new(certs: Arc<ArcSwap<CertStore>>, challenges: Arc<ChallengeStore>) -> Self {
        Self { certs, challenges }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands us the SNI already lower-cased.
        let name = hello.server_name();
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // RFC 8737 §3: answer only with the challenge certificate; with
            // none pending, fail the handshake rather than show a real one.
            return self.challenges.tls_alpn01(name?);
        }
        Some(Arc::clone(self.certs.load().resolve(name)))
    }
}
