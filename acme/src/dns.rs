//! DNS-01: writing `_acme-challenge` TXT records through DNS provider APIs.
//!
//! [`DnsProvider`] is what each provider implements (present, clean up,
//! validate the credential). [`providers::build`] turns a stored credential
//! into a provider. Zone detection, CNAME following and the propagation
//! check live in [`resolver`].

pub mod credentials;
pub mod http;
pub mod provider;
pub mod providers;
pub mod resolver;
pub(crate) mod solver;

pub use provider::{DnsError, DnsProvider, Fields, ProviderSpec};
