//! Pebble plus a Portcullis configured to use it.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::pebble::{free_port, Pebble, PebbleOptions};
use super::Server;

pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a valid certificate may take to reach the data plane.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(10);
pub const CERTS: &str = "/api/v1/acme/certificates";

/// Pebble plus a Portcullis whose `web`/`websecure` ports Pebble validates against.
pub struct Lab {
    pub pebble: Pebble,
    pub server: Server,
    pub web_port: u16,
    pub websecure_port: u16,
}

pub fn issuer_toml(pebble: &Pebble, name: &str, extra: &str) -> String {
    format!(
        "[acme.issuers.{name}]\ndirectory = \"{}\"\nca_bundle = \"{}\"\n{extra}\n",
        pebble.directory_url,
        pebble.ca_bundle.display()
    )
}

impl Lab {
    pub async fn start(settings: &str, configure: impl Fn(&mut PebbleOptions)) -> Self {
        Self::start_with(settings, configure, false).await
    }

    /// Like [`Lab::start`]; with `approval`, plans wait to be approved.
    pub async fn start_with(
        settings: &str,
        configure: impl Fn(&mut PebbleOptions),
        approval: bool,
    ) -> Self {
        // Pebble must know Portcullis's ports before Portcullis starts; a
        // port another test grabbed in between means new ports for both.
        let mut last = String::new();
        for _ in 0..4 {
            let (web_port, websecure_port) = (free_port(), free_port());
            let mut options = PebbleOptions::new(web_port, websecure_port);
            configure(&mut options);
            let pebble = Pebble::start(options).await;
            let config = format!(
                "[acme]\nemail = \"ops@example.test\"\nrenew_interval = \"1s\"\n{settings}\n{}",
                issuer_toml(&pebble, "pebble", "")
            );
            match Server::try_configure(
                tempfile::tempdir().unwrap(),
                &config,
                web_port,
                websecure_port,
                approval,
            ) {
                Ok(server) => {
                    return Self {
                        pebble,
                        server,
                        web_port,
                        websecure_port,
                    }
                }
                Err(logs) if logs.contains("could not listen") => last = logs,
                Err(logs) => panic!("{logs}"),
            }
        }
        panic!("no free ports after 4 attempts:\n{last}")
    }

    /// Kills Portcullis and starts it again on the same state and ports.
    pub fn restart(self) -> Self {
        Self {
            server: self.server.restart(),
            ..self
        }
    }

    /// Requests a certificate and waits until it is settled and, when
    /// valid, served: what a client does before it connects.
    pub async fn issue(&self, body: Value) -> Value {
        let (status, answer) = self.server.api("POST", CERTS, Some(body)).await;
        assert!(status == 202 || status == 200, "{status}: {answer}");
        let id = answer["certificate"]["id"].as_str().unwrap();
        let record = self.server.wait_certificate(id, ISSUE_TIMEOUT).await;
        if record["status"] != "valid" {
            return record;
        }
        self.server.wait_served(id, SERVE_TIMEOUT).await
    }

    /// A client that trusts only Pebble's root.
    pub async fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        trusting(&self.pebble.roots_pem().await, alpn)
    }
}

pub fn trusting(root_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // A resumed session reports the certificate of its first handshake:
    // every connection here must show what is served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}
