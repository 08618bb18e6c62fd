//! `[acme]` settings: issuers, renewal timing, account contact.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::parse_duration;

/// Let's Encrypt's production directory.
pub const LETSENCRYPT_PROD_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory.
pub const LETSENCRYPT_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";
/// Name of the built-in offline CA.
pub const INTERNAL_CA: &str = "internal-ca";
/// Default issuer when a request names none: works offline, so the embedded default can issue.
pub const DEFAULT_ISSUER: &str = INTERNAL_CA;
/// Default time between renewal sweeps (jittered by up to 10 %).
pub const DEFAULT_RENEW_INTERVAL: &str = "6h";
/// Default renewal window: this long before expiry (or the last third of a
/// short lifetime, whichever comes first).
pub const DEFAULT_RENEW_BEFORE: &str = "30d";
/// Default cap on the backoff between failed attempts for the same names.
pub const DEFAULT_BACKOFF_MAX: &str = "6h";
/// Default time the DNS-01 propagation check waits for a TXT record.
pub const DEFAULT_PROPAGATION_TIMEOUT: &str = "2m";
/// Let's Encrypt's published limit of new certificates per registered domain per week.
pub const LETSENCRYPT_WEEKLY_LIMIT: u32 = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAcme {
    email: Option<String>,
    default_issuer: String,
    renew_interval: String,
    renew_before: String,
    backoff_max: String,
    issuers: BTreeMap<String, RawIssuer>,
    dns_resolvers: Vec<String>,
    disable_propagation_check: bool,
    propagation_timeout: String,
}

impl Default for RawAcme {
    fn default() -> Self {
        Self {
            email: None,
            default_issuer: DEFAULT_ISSUER.to_owned(),
            renew_interval: DEFAULT_RENEW_INTERVAL.to_owned(),
            renew_before: DEFAULT_RENEW_BEFORE.to_owned(),
            backoff_max: DEFAULT_BACKOFF_MAX.to_owned(),
            issuers: BTreeMap::new(),
            dns_resolvers: Vec::new(),
            disable_propagation_check: false,
            propagation_timeout: DEFAULT_PROPAGATION_TIMEOUT.to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIssuer {
    directory: Option<String>,
    ca_bundle: Option<PathBuf>,
    eab_kid: Option<String>,
    eab_hmac_key: Option<String>,
    profile: Option<String>,
    fallback: Vec<String>,
    weekly_limit: Option<u32>,
}

/// External Account Binding credentials (RFC 8555 §7.3.4).
#[derive(Clone, PartialEq, Eq)]
pub struct Eab {
    /// Key identifier given by the CA.
    pub kid: String,
    /// HMAC key, base64url as the CA hands it out.
    pub hmac_key: String,
}

impl fmt::Debug for Eab {
    /// Never prints the HMAC key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eab")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What kind of CA an issuer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerKind {
    /// An ACME directory.
    Acme {
        /// Directory URL (https).
        directory: String,
        /// PEM bundle trusted for the directory's TLS, besides the public roots.
        ca_bundle: Option<PathBuf>,
        /// External Account Binding.
        eab: Option<Eab>,
        /// ACME profile to request (draft-ietf-acme-profiles).
        profile: Option<String>,
    },
    /// The CA built into Portcullis.
    InternalCa,
}

/// One configured issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The name requests refer to.
    pub name: String,
    /// ACME or internal.
    pub kind: IssuerKind,
    /// Issuers tried in order when this one fails after its retries.
    pub fallback: Vec<String>,
    /// New certificates per registered domain per week; `None` = no limit.
    pub weekly_limit: Option<u32>,
}

/// Validated `[acme]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// Default account contact.
    pub email: Option<String>,
    /// Issuer used when a request names none.
    pub default_issuer: String,
    /// Time between renewal sweeps.
    pub renew_interval: Duration,
    /// Renew this long before expiry at the latest.
    pub renew_before: Duration,
    /// Cap of the backoff between failed attempts.
    pub backoff_max: Duration,
    /// Every issuer by name, built-ins included.
    pub issuers: BTreeMap<String, IssuerSettings>,
    /// Resolvers for zone detection and the propagation check; empty = the
    /// system resolver and the zone's authoritative servers.
    pub dns_resolvers: Vec<std::net::SocketAddr>,
    /// Skip waiting for TXT records to be visible before validation.
    pub disable_propagation_check: bool,
    /// How long the propagation check waits.
    pub propagation_timeout: Duration,
}

impl AcmeSettings {
    /// The issuer named `name`.
    pub fn issuer(&self, name: &str) -> Option<&IssuerSettings> {
        self.issuers.get(name)
    }
}

fn built_in(name: &str) -> Option<IssuerSettings> {
    let acme = |directory: &str| IssuerKind::Acme {
        directory: directory.to_owned(),
        ca_bundle: None,
        eab: None,
        profile: None,
    };
    let (kind, weekly_limit) = match name {
        "letsencrypt-prod" => (
            acme(LETSENCRYPT_PROD_DIRECTORY),
            Some(LETSENCRYPT_WEEKLY_LIMIT),
        ),
        "letsencrypt-staging" => (acme(LETSENCRYPT_STAGING_DIRECTORY), None),
        INTERNAL_CA => (IssuerKind::InternalCa, None),
        _ => return None,
    };
    Some(IssuerSettings {
        name: name.to_owned(),
        kind,
        fallback: Vec::new(),
        weekly_limit,
    })
}

/// Validates raw settings; errors are `(dotted key, message)`.
pub(super) fn validate(raw: RawAcme) -> Result<AcmeSettings, (String, String)> {
    let duration =
        |key: &str, text: &str| parse_duration(text).map_err(|m| (format!("acme.{key}"), m));
    let renew_interval = duration("renew_interval", &raw.renew_interval)?;
    let renew_before = duration("renew_before", &raw.renew_before)?;
    let backoff_max = duration("backoff_max", &raw.backoff_max)?;
    if let Some(email) = &raw.email {
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Err((
                "acme.email".into(),
                format!("\"{email}\" is not an email address"),
            ));
        }
    }
    let mut issuers: BTreeMap<String, IssuerSettings> =
        ["letsencrypt-prod", "letsencrypt-staging", INTERNAL_CA]
            .into_iter()
            .filter_map(|n| built_in(n).map(|i| (n.to_owned(), i)))
            .collect();
    for (name, raw) in raw.issuers {
        let key = |field: &str| format!("acme.issuers.{name}.{field}");
        let fail = |field: &str, message: String| (key(field), message);
        let mut issuer = match (built_in(&name), raw.directory) {
            (Some(_), Some(_)) => {
                return Err(fail(
                    "directory",
                    format!("\"{name}\" is built in and has a fixed directory; name your issuer differently"),
                ))
            }
            (Some(existing), None) => existing,
            (None, None) => {
                return Err(fail("directory", "is required for a custom issuer; set the ACME directory URL".into()))
            }
            (None, Some(directory)) => {
                if !directory.starts_with("https://") {
                    return Err(fail("directory", format!("\"{directory}\" must be an https:// URL")));
                }
                IssuerSettings {
                    name: name.clone(),
                    kind: IssuerKind::Acme {
                        directory,
                        ca_bundle: None,
                        eab: None,
                        profile: None,
                    },
                    fallback: Vec::new(),
                    weekly_limit: None,
                }
            }
        };
        if let IssuerKind::Acme {
            ca_bundle,
            eab,
            profile,
            ..
        } = &mut issuer.kind
        {
            if let Some(bundle) = raw.ca_bundle {
                if !bundle.is_file() {
                    return Err(fail(
                        "ca_bundle",
                        format!("{} is not a readable file", bundle.display()),
                    ));
                }
                *ca_bundle = Some(bundle);
            }
            *eab = match (raw.eab_kid, raw.eab_hmac_key) {
                (None, None) => None,
                (Some(kid), Some(hmac_key)) => Some(Eab { kid, hmac_key }),
                _ => {
                    return Err(fail(
                        "eab_kid",
                        "set both `eab_kid` and `eab_hmac_key`, or neither".into(),
                    ))
                }
            };
            if raw.profile.is_some() {
                profile.clone_from(&raw.profile);
            }
        } else if raw.ca_bundle.is_some() || raw.eab_kid.is_some() || raw.profile.is_some() {
            return Err(fail(
                "ca_bundle",
                "internal-ca takes no ca_bundle, eab or profile".into(),
            ));
        }
        issuer.fallback = raw.fallback;
        if raw.weekly_limit.is_some() {
            issuer.weekly_limit = raw.weekly_limit.filter(|l| *l > 0);
        }
        issuers.insert(name, issuer);
    }
    for issuer in issuers.values() {
        for next in &issuer.fallback {
            if next == &issuer.name || !issuers.contains_key(next) {
                return Err((
                    format!("acme.issuers.{}.fallback", issuer.name),
                    format!("\"{next}\" is not another configured issuer"),
                ));
            }
        }
    }
    if !issuers.contains_key(&raw.default_issuer) {
        return Err((
            "acme.default_issuer".into(),
            format!("\"{}\" is not a configured issuer", raw.default_issuer),
        ));
    }
    let dns_resolvers =
        parse_resolvers(&raw.dns_resolvers).map_err(|m| ("acme.dns_resolvers".to_owned(), m))?;
    let propagation_timeout = duration("propagation_timeout", &raw.propagation_timeout)?;
    Ok(AcmeSettings {
        dns_resolvers,
        disable_propagation_check: raw.disable_propagation_check,
        propagation_timeout,
        email: raw.email,
        default_issuer: raw.default_issuer,
        renew_interval,
        renew_before,
        backoff_max,
        issuers,
    })
}

/// Parses `"1.1.1.1:53"` entries (a bare IP gets port 53).
pub fn parse_resolvers<S: AsRef<str>>(entries: &[S]) -> Result<Vec<std::net::SocketAddr>, String> {
    entries
        .iter()
        .map(|e| e.as_ref().trim())
        .filter(|e| !e.is_empty())
        .map(|entry| {
            entry
                .parse::<std::net::SocketAddr>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::new(ip, 53)))
                .map_err(|_| format!("\"{entry}\" is not an IP address with an optional port, e.g. \"1.1.1.1:53\""))
        })
        .collect()
}
