//! The HTTP client instant-acme talks to a directory with.
//!
//! Ours sets TCP_NODELAY (without it every ACME request waits ~40 ms on
//! Nagle + delayed ACK), trusts an issuer's private CA bundle on top of the
//! public roots, and bounds every request in time.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::Error;

/// Upper bound on one request to the directory.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTPS client with a timeout per request.
pub(crate) struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
}

impl AcmeHttp {
    /// Trusts the public roots plus every certificate in `ca_bundle`.
    pub(crate) fn new(issuer: &str, ca_bundle: Option<&Path>) -> Result<Self, Error> {
        let fail = |message: String| Error::Issuer {
            issuer: issuer.to_owned(),
            message,
        };
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path)
                .map_err(|e| fail(format!("ca_bundle {}: {e}", path.display())))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| fail(format!("ca_bundle {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| fail(format!("ca_bundle {}: {e}", path.display())))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let sent = self.client.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, sent).await {
                Ok(Ok(response)) => Ok(BytesResponse::from(response)),
                Ok(Err(error)) => Err(instant_acme::Error::Other(Box::new(error))),
                Err(_) => Err(instant_acme::Error::Str(
                    "the ACME directory did not answer within 30 s",
                )),
            }
        })
    }
}
