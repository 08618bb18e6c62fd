//! Keys, CSRs and what we read back from an issued chain.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Error;

/// A fresh ECDSA P-256 key: fast handshakes, accepted by every public CA.
pub(crate) fn generate_key() -> Result<KeyPair, Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Material(format!("could not generate a key: {e}")))
}

/// PKCS#8 DER of a key, zeroed when dropped.
pub(crate) fn key_der(key: &KeyPair) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(key.serialize_der())
}

/// A CSR for `names` (first = CN) signed by `key`.
pub(crate) fn csr_der(names: &[String], key: &KeyPair) -> Result<Vec<u8>, Error> {
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| Error::Material(format!("names not usable in a CSR: {e}")))?;
    let mut dn = DistinguishedName::new();
    if let Some(cn) = names.first() {
        dn.push(DnType::CommonName, cn.as_str());
    }
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(key)
        .map_err(|e| Error::Material(format!("could not build the CSR: {e}")))?;
    Ok(csr.der().to_vec())
}

/// Facts about an issued leaf certificate, recorded with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafFacts {
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// Serial, lower-case hex without leading zeros stripped.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// DNS names in the subjectAltName.
    pub names: Vec<String>,
}

/// Reads the leaf of a PEM chain.
pub fn leaf_facts(chain_pem: &str) -> Result<LeafFacts, Error> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| Error::Material("the chain holds no certificate".into()))?
        .map_err(|e| Error::Material(format!("the chain is not valid PEM: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| Error::Material(format!("could not parse the leaf: {e}")))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(LeafFacts {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: hex(cert.raw_serial()).trim_start_matches('0').to_owned(),
        fingerprint_sha256: fingerprint_sha256(leaf.as_ref()),
        names,
    })
}

/// SHA-256 of a DER certificate, lower-case hex: the form records keep in
/// `fingerprint_sha256`, so that whoever holds the DER (the data plane) can
/// say which record's certificate it serves.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// RFC 9773 §4.1: the ARI identifier of the leaf in `chain_pem`, built from
/// its Authority Key Identifier and its DER serial; `None` without an AKI.
pub(crate) fn ari_identifier(
    chain_pem: &str,
) -> Option<instant_acme::CertificateIdentifier<'static>> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })?;
    Some(
        instant_acme::CertificateIdentifier::new(
            rustls_pki_types::Der::from_slice(&aki),
            rustls_pki_types::Der::from_slice(cert.raw_serial()),
        )
        .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9773 §4.1's own example.
    #[test]
    fn ari_identifier_matches_the_rfc_example() {
        let aki = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let serial = [0x00, 0x87, 0x65, 0x43, 0x21];
        let id = instant_acme::CertificateIdentifier::new(
            rustls_pki_types::Der::from_slice(&aki),
            rustls_pki_types::Der::from_slice(&serial),
        );
        assert_eq!(id.to_string(), "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    }

    #[test]
    fn ari_identifier_reads_aki_and_serial_from_a_chain() {
        let ca_key = generate_key().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![1, 2, 3, 4]);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = generate_key().unwrap();
        let mut leaf = CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[
            0x00, 0x87, 0x65, 0x43, 0x21,
        ]));
        let leaf = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let id = ari_identifier(&leaf.pem()).unwrap();
        assert_eq!(id.to_string(), "AQIDBA.AIdlQyE");
        let facts = leaf_facts(&leaf.pem()).unwrap();
        assert_eq!(facts.names, vec!["a.test"]);
        assert_eq!(facts.serial, "87654321");
    }
}
