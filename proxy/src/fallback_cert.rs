//! The certificate served when no loaded certificate matches the SNI.
//!
//! Its subject reads `PORTCULLIS DEFAULT CERT` so that an operator running
//! `openssl s_client -servername NAME` sees at once that NAME has no
//! certificate loaded, instead of a confusing name mismatch.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::LoadedCertificate;
use crate::Error;

/// Subject common name of the generated fallback certificate.
pub const FALLBACK_COMMON_NAME: &str = "PORTCULLIS DEFAULT CERT";

/// Generates a fresh self-signed ECDSA P-256 fallback certificate.
pub(crate) fn generate(provider: &CryptoProvider) -> Result<LoadedCertificate, Error> {
    self_signed(FALLBACK_COMMON_NAME, &["portcullis.invalid"], provider)
}

/// A self-signed ECDSA P-256 certificate for `names`, valid for a year.
pub fn self_signed(
    common_name: &str,
    names: &[&str],
    provider: &CryptoProvider,
) -> Result<LoadedCertificate, Error> {
    let fail = |e: rcgen::Error| Error::Certificate {
        source_name: "generated".into(),
        message: e.to_string(),
    };
    let key = KeyPair::generate().map_err(fail)?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .map_err(fail)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    subject.push(DnType::OrganizationName, "Portcullis");
    params.distinguished_name = subject;
    let cert = params.self_signed(&key).map_err(fail)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut loaded = LoadedCertificate::from_der(
        "generated",
        vec![CertificateDer::from(cert.der().to_vec())],
        key_der,
        provider,
    )?;
    // The fallback must never be indexed under its placeholder name.
    if common_name == FALLBACK_COMMON_NAME {
        loaded.names.clear();
    }
    Ok(loaded)
}
