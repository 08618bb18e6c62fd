//! The `route53` DNS provider (being written).

use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

/// Fields of a `route53` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: "route53",
    secrets: &[],
    required: &[],
    optional: &[],
};

/// Builds the provider from a credential.
pub(crate) fn build(_fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Err(DnsError::Config {
        provider: "route53",
        field: "provider".into(),
        message: "not available yet".into(),
    })
}
