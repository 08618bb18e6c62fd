//! The CA built into Portcullis, for platform-internal names and offline use.
//!
//! Its root key is sealed in the secret store and its root certificate kept
//! as a public entry, so every node of a fleet signs with the same root.
//! Leaves are issued directly: there is no one to prove control of a name
//! to, so no challenge is involved.

use std::time::Duration;

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::material::generate_key;
use crate::secrets::Secrets;
use crate::Error;

/// Lifetime of leaves from the internal CA, as Let's Encrypt's.
pub(crate) const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// Lifetime of the root.
pub(crate) const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
const ROOT_KEY_LABEL: &str = "internal-ca/root.key";
const ROOT_CERT_KEY: &str = "internal-ca/root.pem";
const ROOT_COMMON_NAME: &str = "Portcullis Internal CA";

/// A loaded internal CA.
pub struct InternalCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    root_pem: String,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").finish_non_exhaustive()
    }
}

impl InternalCa {
    /// Loads the CA, creating its root on first use.
    pub async fn load_or_create(secrets: &Secrets, store: &dyn Store) -> Result<Self, Error> {
        if let (Some(key), Some(root)) = (
            secrets.get(ROOT_KEY_LABEL).await?,
            store.get(space::PUBLIC, ROOT_CERT_KEY).await?,
        ) {
            let key = KeyPair::try_from(key.as_slice())
                .map_err(|e| Error::Material(format!("internal CA key: {e}")))?;
            let root_pem = String::from_utf8(root.value)
                .map_err(|_| Error::Material("internal CA root is not PEM".into()))?;
            let params = CertificateParams::from_ca_cert_pem(&root_pem)
                .map_err(|e| Error::Material(format!("internal CA root: {e}")))?;
            // Re-signing the same parameters with the same key yields an
            // issuer with the root's subject and key identifier.
            let cert = params
                .self_signed(&key)
                .map_err(|e| Error::Material(format!("internal CA root: {e}")))?;
            return Ok(Self {
                key,
                cert,
                root_pem,
            });
        }
        let key = generate_key()?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::Material(e.to_string()))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ROOT_COMMON_NAME);
        dn.push(DnType::OrganizationName, "Portcullis");
        params.distinguished_name = dn;
        let now = time_now();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + ROOT_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Material(format!("could not create the internal CA: {e}")))?;
        let root_pem = cert.pem();
        secrets.put(ROOT_KEY_LABEL, &key.serialize_der()).await?;
        store
            .put(
                space::PUBLIC,
                ROOT_CERT_KEY,
                root_pem.clone().into_bytes(),
                Expect::Absent,
            )
            .await?;
        tracing::info!("created the internal CA root; export it with `portcullis ca export`");
        Ok(Self {
            key,
            cert,
            root_pem,
        })
    }

    /// The root certificate, PEM, for clients to trust.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Issues a leaf for `names` (first = CN); returns the PEM chain and the key.
    pub fn issue(&self, names: &[String]) -> Result<(String, KeyPair), Error> {
        let key = generate_key()?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| Error::Material(format!("names not usable: {e}")))?;
        let mut dn = DistinguishedName::new();
        if let Some(cn) = names.first() {
            dn.push(DnType::CommonName, cn.as_str());
        }
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time_now();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + LEAF_VALIDITY;
        let mut serial = rand::random::<[u8; 16]>();
        // RFC 5280 §4.1.2.2: the serial is a positive integer.
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let leaf = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| Error::Material(format!("could not sign: {e}")))?;
        Ok((format!("{}{}", leaf.pem(), self.root_pem), key))
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
