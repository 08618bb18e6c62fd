//! Client certificates: requested at the handshake, enforced per route.
//!
//! A TLS handshake happens before the request says which router it is for,
//! so the handshake verifier accepts a certificate that chains to *any*
//! router's client CA (and accepts no certificate at all); each route then
//! checks the chain against its own CA when a request arrives. The set of CAs
//! follows the route table through an `ArcSwap`, so adding an mTLS router
//! needs no new `ServerConfig`.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

/// A sized wrapper, because `ArcSwap` cannot hold `Arc<dyn Trait>` directly.
#[derive(Debug)]
struct Union(Arc<dyn ClientCertVerifier>);

/// The handshake-time verifier over the union of all routers' client CAs.
#[derive(Debug)]
pub(crate) struct DynamicClientAuth {
    current: ArcSwapOption<Union>,
    provider: Arc<CryptoProvider>,
}

impl DynamicClientAuth {
    /// A verifier that does not ask for client certificates until roots are set.
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            provider,
        }
    }

    /// Replaces the accepted roots; `None` stops asking for client certificates.
    pub(crate) fn set_roots(&self, roots: Option<&Arc<RootCertStore>>) {
        let verifier = roots.and_then(|roots| {
            WebPkiClientVerifier::builder_with_provider(
                Arc::clone(roots),
                Arc::clone(&self.provider),
            )
            .allow_unauthenticated()
            .build()
            .ok()
        });
        self.current.store(verifier.map(|v| Arc::new(Union(v))));
    }
}

impl ClientCertVerifier for DynamicClientAuth {
    fn offer_client_auth(&self) -> bool {
        self.current.load().is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        // Enforcement is per route: a connection without a certificate may
        // still be for a route that does not need one.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints live in a snapshot we cannot lend out; they are optional
        // (RFC 8446 §4.2.4), and clients then offer any certificate they have.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.current.load().as_ref() {
            Some(union) => union.0.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "no router accepts client certificates".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
