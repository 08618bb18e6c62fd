//! Portcullis certificate issuance.
//!
//! The [`Manager`] owns every certificate's lifecycle: it validates a
//! request, reuses a valid certificate when one covers the names, respects
//! rate limits, runs the ACME order (or signs with the [`InternalCa`]),
//! renews in the background and revokes on demand. Records live in the
//! store; private keys only in the [`Secrets`] store, sealed.
//!
//! The data plane answers challenges through the [`ChallengeResponder`]
//! trait and learns about new certificates through [`Manager::subscribe`];
//! this crate knows nothing of listeners.

mod account;
mod challenge;
pub mod dns;
mod error;
mod http_client;
mod internal_ca;
mod ledger;
mod manager;
mod material;
mod order;
mod request;
mod secrets;
mod window;

pub use challenge::{tls_alpn01_certificate, ChallengeResponder};
pub use error::Error;
pub use internal_ca::InternalCa;
pub use ledger::registered_domain;
pub use manager::{Manager, ServingCertificate};
pub use material::{fingerprint_sha256, leaf_facts, LeafFacts};
pub use request::CertRequest;
pub use secrets::{SecretKey, Secrets};
pub use window::{backoff_seconds, is_due, renewal_time};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
