//! The provider registry: names, required fields, construction.
//!
//! Each provider lives in its own module with a `SPEC` (the fields its
//! credential holds) and a `build` function.

mod cloudflare;
mod digitalocean;
mod gcloud;
mod hetzner;
mod ovh;
mod porkbun;
mod rfc2136;
mod route53;
mod support;
#[cfg(test)]
mod test_support;

use super::provider::{DnsError, DnsProvider, Fields, ProviderSpec};

type Builder = fn(&Fields) -> Result<Box<dyn DnsProvider>, DnsError>;

const REGISTRY: &[(ProviderSpec, Builder)] = &[
    (cloudflare::SPEC, cloudflare::build),
    (route53::SPEC, route53::build),
    (gcloud::SPEC, gcloud::build),
    (digitalocean::SPEC, digitalocean::build),
    (hetzner::SPEC, hetzner::build),
    (porkbun::SPEC, porkbun::build),
    (ovh::SPEC, ovh::build),
    (rfc2136::SPEC, rfc2136::build),
];

/// Every supported provider's spec.
pub fn specs() -> impl Iterator<Item = &'static ProviderSpec> {
    REGISTRY.iter().map(|(spec, _)| spec)
}

/// The spec of a provider by name.
pub fn spec(name: &str) -> Option<&'static ProviderSpec> {
    specs().find(|s| s.name == name)
}

/// Builds a provider from a credential's fields.
pub fn build(name: &str, fields: &Fields) -> Result<Box<dyn DnsProvider>, DnsError> {
    let (_, builder) = REGISTRY
        .iter()
        .find(|(spec, _)| spec.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = specs().map(|s| s.name).collect();
            DnsError::Config {
                provider: "dns",
                field: "provider".into(),
                message: format!(
                    "\"{name}\" is not a supported provider; use one of: {}",
                    known.join(", ")
                ),
            }
        })?;
    builder(fields)
}
