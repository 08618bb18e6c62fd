//! Feeds certificates from the ACME manager into the cert store.

use std::sync::Arc;

use portcullis_acme::Manager;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::LoadedCertificate;
use crate::dataplane::DataPlane;

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
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.to_vec()));
        match LoadedCertificate::from_der(&cert.id, chain, key, plane.provider()) {
            Ok(certificate) => loaded.push((cert.id, certificate)),
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
