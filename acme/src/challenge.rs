//! The listeners that answer ACME challenges, seen from the ACME engine.
//!
//! The data plane implements [`ChallengeResponder`]; this crate cannot depend
//! on it (dependencies point from the proxy to here), so it only hands over
//! what to answer.

use rcgen::{CertificateParams, CustomExtension};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::material::generate_key;
use crate::Error;

/// Something that answers challenges on the public listeners.
pub trait ChallengeResponder: Send + Sync + 'static {
    /// Serve `key_authorization` at `/.well-known/acme-challenge/{token}` (RFC 8555 §8.3).
    fn publish_http01(&self, token: &str, key_authorization: &str);
    /// Stop serving an HTTP-01 token.
    fn remove_http01(&self, token: &str);
    /// Present this certificate to `acme-tls/1` handshakes for `name` (RFC 8737 §3).
    fn publish_tls_alpn01(
        &self,
        name: &str,
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), Error>;
    /// Stop presenting the TLS-ALPN-01 certificate for `name`.
    fn remove_tls_alpn01(&self, name: &str);
}

/// RFC 8737 §3: a self-signed certificate for `name` whose critical
/// acmeIdentifier extension holds SHA-256 of the key authorization.
pub fn tls_alpn01_certificate(
    name: &str,
    key_authorization: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    let key = generate_key()?;
    let mut params = CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| Error::Material(format!("challenge certificate for {name}: {e}")))?;
    let digest = Sha256::digest(key_authorization.as_bytes());
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(&digest)];
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Material(format!("challenge certificate for {name}: {e}")))?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}
