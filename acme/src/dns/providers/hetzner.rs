//! The `hetzner` DNS provider (being written).

use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

/// Fields of a `hetzner` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: "hetzner",
    secrets: &[],
    required: &[],
    optional: &[],
};

/// Builds the provider from a credential.
pub(crate) fn build(_fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Err(DnsError::Config {
        provider: "hetzner",
        field: "provider".into(),
        message: "not available yet".into(),
    })
}
