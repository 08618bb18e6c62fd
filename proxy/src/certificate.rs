//! Turning PEM material into rustls `CertifiedKey`s, and reading the names a
//! certificate covers.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A certificate ready to serve, with the names it answers for.
#[derive(Clone, Debug)]
pub struct LoadedCertificate {
    /// Chain and signing key as rustls uses them.
    pub key: Arc<CertifiedKey>,
    /// Lower-case DNS names from the leaf's subjectAltName (or CN when it has none).
    pub names: Vec<String>,
    /// Expiry, seconds since the Unix epoch; when two certificates cover a
    /// name, the one that lasts longer is served.
    pub not_after: i64,
}

impl LoadedCertificate {
    /// Parses a PEM chain (leaf first) and its PEM private key.
    ///
    /// `source_name` appears in errors; key bytes never do.
    pub fn from_pem(
        source_name: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
        provider: &CryptoProvider,
    ) -> Result<Self, Error> {
        let fail = |message: String| Error::Certificate {
            source_name: source_name.to_owned(),
            message,
        };
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("the certificate file is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(fail(
                "the certificate file holds no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
            fail("the key file holds no PKCS#8, PKCS#1 or SEC1 private key in PEM".into())
        })?;
        Self::from_der(source_name, chain, key, provider)
    }

    /// Builds from DER: the chain (leaf first) and the private key.
    pub fn from_der(
        source_name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        provider: &CryptoProvider,
    ) -> Result<Self, Error> {
        let fail = |message: String| Error::Certificate {
            source_name: source_name.to_owned(),
            message,
        };
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| fail(format!("unsupported private key: {e}")))?;
        let (names, not_after) = leaf_names(chain.first().map(|c| c.as_ref()).unwrap_or(&[]))
            .map_err(|e| fail(format!("could not parse the leaf certificate: {e}")))?;
        let key = CertifiedKey::new(chain, signing_key);
        key.keys_match()
            .map_err(|_| fail("the private key does not belong to the leaf certificate".into()))?;
        Ok(Self {
            key: Arc::new(key),
            names,
            not_after,
        })
    }
}

/// The DNS names and expiry of a DER certificate.
pub fn leaf_names(der: &[u8]) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// The subject distinguished name of a DER certificate, for headers and logs.
pub(crate) fn subject(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.subject().to_string())
}
