//! Feeds certificates from the ACME manager into the cert store.

use std::sync::Arc;

use portcullis_acme::Manager;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::LoadedCertificate;
use crate::dataplane::DataPlane;

/// A certificate the ACME engine obtained, as the data plane takes it.
#[derive(Clone, Debug)]
pub struct ManagedCertificate {
    /// The record's id, which routers name in `tls_cert_id`.
    pub id: String,
    /// SHA-256 of the leaf, lower-case hex, as the record keeps it. A
    /// renewal keeps the id and changes this, so it is what tells whether
    /// the record's *current* certificate is the one clients get.
    pub fingerprint_sha256: String,
    /// Chain and key, parsed.
    pub certificate: LoadedCertificate,
}

/// Loads the manager's serving certificates into `plane` now, then again
/// every time the manager reports a change, until the task is dropped.
pub async fn spawn_feed(plane: Arc<DataPlane>, manager: Manager) -> tokio::task::JoinHandle<()> {
    let mut changes = manager.subscribe();
    load(&plane, &manager).await;
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            load(&plane, &manager).await;
        }
    })
}

/// Loads the manager's serving certificates into `plane` now.
pub async fn load(plane: &DataPlane, manager: &Manager) {
    let serving = match manager.serving_certificates().await {
        Ok(serving) => serving,
        Err(error) => {
            tracing::error!(%error, "could not load managed certificates; keeping the current ones");
            return;
        }
    };
    let mut loaded = Vec::with_capacity(serving.len());
    for cert in serving {
        let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>();
        let Ok(chain) = chain else {
            tracing::error!(id = %cert.id, "stored chain is not valid PEM");
            continue;
        };
        let Some(leaf) = chain.first() else {
            tracing::error!(id = %cert.id, "stored chain holds no certificate");
            continue;
        };
        let fingerprint_sha256 = portcullis_acme::fingerprint_sha256(leaf.as_ref());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.to_vec()));
        match LoadedCertificate::from_der(&cert.id, chain, key, plane.provider()) {
            Ok(certificate) => loaded.push(ManagedCertificate {
                id: cert.id,
                fingerprint_sha256,
                certificate,
            }),
            Err(error) => {
                tracing::error!(id = %cert.id, %error, "managed certificate not loadable")
            }
        }
    }
    tracing::info!(certificates = loaded.len(), "managed certificates loaded");
    if let Err(error) = plane.set_managed_certificates(loaded) {
        tracing::error!(%error, "could not rebuild routes for the new certificates");
    }
}
