//! The `rfc2136` DNS provider (being written).

use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

/// Fields of a `rfc2136` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: "rfc2136",
    secrets: &[],
    required: &[],
    optional: &[],
};

/// Builds the provider from a credential.
pub(crate) fn build(_fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Err(DnsError::Config {
        provider: "rfc2136",
        field: "provider".into(),
        message: "not available yet".into(),
    })
}
