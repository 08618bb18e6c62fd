//! The contract every DNS provider fulfils.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Errors from a DNS provider. Messages carry the provider's own words and
/// never a secret (tokens, keys, signatures).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The credential was refused (401/403, bad signature, BADSIG...).
    #[error("{provider}: credential refused: {message}")]
    Auth {
        /// Provider name.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// The provider answered with an error.
    #[error("{provider}: {message} (HTTP {status})")]
    Api {
        /// Provider name.
        provider: &'static str,
        /// HTTP status (or DNS rcode for rfc2136).
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The credential works but cannot see the zone.
    #[error("{provider}: zone \"{zone}\" is not visible to this credential")]
    ZoneNotFound {
        /// Provider name.
        provider: &'static str,
        /// The zone looked for.
        zone: String,
    },
    /// The provider could not be reached.
    #[error("{provider}: {message}")]
    Transport {
        /// Provider name.
        provider: &'static str,
        /// What failed.
        message: String,
    },
    /// A configuration or secret field is missing or malformed.
    #[error("{provider}: `{field}`: {message}")]
    Config {
        /// Provider name.
        provider: &'static str,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A DNS provider API that can hold `_acme-challenge` TXT records.
///
/// Names are passed without a trailing dot, lower-case. Several values may
/// exist at one name at once (a wildcard and its apex share
/// `_acme-challenge.example.com`): `present` adds, `cleanup` removes only
/// its own value.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Provider name, e.g. `cloudflare`.
    fn name(&self) -> &'static str;

    /// Adds TXT `value` at `fqdn` in `zone`, keeping other values there.
    async fn present(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError>;

    /// Removes TXT `value` at `fqdn`; other values at the name stay. A value
    /// that is already gone is not an error.
    async fn cleanup(&self, zone: &str, fqdn: &str, value: &str) -> Result<(), DnsError>;

    /// A read-only call that proves the credential works; returns the zones
    /// it can see (lower-case, no trailing dot).
    async fn validate(&self) -> Result<Vec<String>, DnsError>;
}

/// What a provider needs from a credential: plain settings and secrets.
#[derive(Clone, Copy, Debug)]
pub struct ProviderSpec {
    /// Provider name.
    pub name: &'static str,
    /// Secret fields, all required (stored sealed, never shown).
    pub secrets: &'static [&'static str],
    /// Secret fields that may be given (stored sealed, never shown).
    pub optional_secrets: &'static [&'static str],
    /// Plain settings that must be given.
    pub required: &'static [&'static str],
    /// Plain settings that may be given (`base_url` for HTTP providers).
    pub optional: &'static [&'static str],
}

/// Plain settings and secrets of one credential, by field name.
#[derive(Clone, Default)]
pub struct Fields {
    /// Plain settings.
    pub config: BTreeMap<String, String>,
    /// Secrets (zeroed on drop is the caller's job; never printed).
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fields")
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Fields {
    /// A required secret.
    pub fn secret(&self, provider: &'static str, field: &str) -> Result<&str, DnsError> {
        self.secrets
            .get(field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| DnsError::Config {
                provider,
                field: field.to_owned(),
                message: "is required".into(),
            })
    }

    /// A plain setting, or `default`.
    pub fn config_or<'a>(&'a self, field: &str, default: &'a str) -> &'a str {
        self.config.get(field).map_or(default, String::as_str)
    }

    /// A required plain setting.
    pub fn config(&self, provider: &'static str, field: &str) -> Result<&str, DnsError> {
        self.config
            .get(field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| DnsError::Config {
                provider,
                field: field.to_owned(),
                message: "is required".into(),
            })
    }
}
