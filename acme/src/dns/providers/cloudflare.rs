//! The `cloudflare` DNS provider (being written).

use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

/// Fields of a `cloudflare` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: "cloudflare",
    secrets: &[],
    required: &[],
    optional: &[],
};

/// Builds the provider from a credential.
pub(crate) fn build(_fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Err(DnsError::Config {
        provider: "cloudflare",
        field: "provider".into(),
        message: "not available yet".into(),
    })
}
