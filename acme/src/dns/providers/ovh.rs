//! The `ovh` DNS provider (being written).

use crate::dns::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

/// Fields of a `ovh` credential.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: "ovh",
    secrets: &[],
    required: &[],
    optional: &[],
};

/// Builds the provider from a credential.
pub(crate) fn build(_fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    Err(DnsError::Config {
        provider: "ovh",
        field: "provider".into(),
        message: "not available yet".into(),
    })
}
