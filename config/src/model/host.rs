//! Host names and single-label wildcards, as routers and certificates use them.

use std::fmt;

/// A host a router or certificate answers for: an exact name or `*.parent`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// An exact, lower-case name.
    Exact(String),
    /// `*.parent`: any one label in front of `parent` (stored without `*.`).
    Wildcard(String),
}

impl HostPattern {
    /// Parses and lower-cases a host name, allowing `*.` only as the whole first label.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(parent) = lower.strip_prefix("*.") {
            validate_dns_name(parent, text)?;
            if !parent.contains('.') {
                return Err(format!(
                    "wildcard \"{text}\" covers a whole top-level domain; use at least \"*.example.com\""
                ));
            }
            return Ok(Self::Wildcard(parent.to_owned()));
        }
        validate_dns_name(&lower, text)?;
        Ok(Self::Exact(lower))
    }

    /// True when `host` (already lower-case) is covered by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Wildcard(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// Lower-cases a request's Host and strips a port or a trailing dot.
///
/// Returns `None` for an empty host. IPv6 literals keep their brackets.
pub fn normalize_host(authority: &str) -> Option<String> {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// RFC 1035 §2.3.1 letters-digits-hyphen labels, 1-63 octets each, at most 253 in all.
/// Underscores are allowed because `_acme-challenge`-style service names occur.
fn validate_dns_name(name: &str, original: &str) -> Result<(), String> {
    let bad = |why: &str| format!("host \"{original}\" is not a valid DNS name: {why}");
    if name.is_empty() || name.len() > 253 {
        return Err(bad("it must be 1-253 characters"));
    }
    if name.ends_with('.') {
        return Err(bad("remove the trailing dot"));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad("IP addresses are not host names"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must be 1-63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("labels may not start or end with '-'"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "only letters, digits and '-' are allowed (use punycode for IDNs)",
            ));
        }
    }
    Ok(())
}
