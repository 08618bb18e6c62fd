//! `[tenants]`: vanity domains for the tenants of a SaaS portal.

use std::time::Duration;

use serde::Deserialize;

use crate::parse_duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTenants {
    canonical_base: Option<String>,
    portal_upstreams: Vec<String>,
    domain_issuer: String,
    verify_interval: String,
    verify_timeout: String,
    drift_interval: String,
    drift_grace: String,
    export_dir: Option<std::path::PathBuf>,
    export_git: bool,
    wildcard_issuer: String,
    wildcard_dns_credential: Option<String>,
}

impl Default for RawTenants {
    fn default() -> Self {
        Self {
            canonical_base: None,
            portal_upstreams: Vec::new(),
            domain_issuer: "letsencrypt-prod".to_owned(),
            verify_interval: "30s".to_owned(),
            verify_timeout: "1h".to_owned(),
            drift_interval: "1h".to_owned(),
            drift_grace: "24h".to_owned(),
            export_dir: None,
            export_git: false,
            wildcard_issuer: "letsencrypt-prod".to_owned(),
            wildcard_dns_credential: None,
        }
    }
}

/// Validated `[tenants]` settings; `None` in [`crate::Settings`] when no
/// `canonical_base` is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSettings {
    /// Tenants are served at `<tenant>.<canonical_base>`.
    pub canonical_base: String,
    /// The portal backend vanity and canonical hosts route to.
    pub portal_upstreams: Vec<String>,
    /// Issuer of vanity-domain certificates (HTTP-01).
    pub domain_issuer: String,
    /// Time between CNAME checks while verifying.
    pub verify_interval: Duration,
    /// How long verification waits for the CNAME before `dns_failed`.
    pub verify_timeout: Duration,
    /// How often active domains' CNAMEs are checked again.
    pub drift_interval: Duration,
    /// How long a changed or missing CNAME is tolerated (with a warning)
    /// before the domain is unrouted.
    pub drift_grace: Duration,
    /// When set, the rendered state is exported there after every check pass.
    pub export_dir: Option<std::path::PathBuf>,
    /// Commit each export in `export_dir` (a Git repository).
    pub export_git: bool,
    /// Issuer of the `*.<canonical_base>` + `<canonical_base>` certificate.
    pub wildcard_issuer: String,
    /// Name (or id) of the DNS credential that certificate is validated with
    /// (dns-01); `None` = no canonical certificate is requested, unless the
    /// issuer is the internal CA, which needs none.
    pub wildcard_dns_credential: Option<String>,
}

pub(super) fn validate(raw: RawTenants) -> Result<Option<TenantSettings>, (String, String)> {
    let Some(base) = raw.canonical_base else {
        return Ok(None);
    };
    let base = crate::model::HostPattern::parse(&base)
        .map_err(|m| ("tenants.canonical_base".to_owned(), m))?
        .to_string();
    if raw.portal_upstreams.is_empty() {
        return Err((
            "tenants.portal_upstreams".into(),
            "is required with canonical_base: the portal backend's \"host:port\" addresses".into(),
        ));
    }
    let portal = crate::model::Service::new("tenant-portal", raw.portal_upstreams.clone());
    portal
        .validate()
        .map_err(|e| ("tenants.portal_upstreams".to_owned(), e.to_string()))?;
    let duration =
        |key: &str, text: &str| parse_duration(text).map_err(|m| (format!("tenants.{key}"), m));
    Ok(Some(TenantSettings {
        canonical_base: base,
        portal_upstreams: raw.portal_upstreams,
        domain_issuer: raw.domain_issuer,
        verify_interval: duration("verify_interval", &raw.verify_interval)?,
        verify_timeout: duration("verify_timeout", &raw.verify_timeout)?,
        drift_interval: duration("drift_interval", &raw.drift_interval)?,
        drift_grace: duration("drift_grace", &raw.drift_grace)?,
        export_dir: raw.export_dir,
        export_git: raw.export_git,
        wildcard_issuer: raw.wildcard_issuer,
        wildcard_dns_credential: raw.wildcard_dns_credential,
    }))
}
