//! The desired state the data plane is built from.
//!
//! Services and routers come from two places, the file provider and the
//! store; both are validated here with the same rules, then merged by
//! [`DesiredState::merge`], which refuses a name defined twice and a router
//! pointing at a service that does not exist. The data plane never sees a
//! state that failed these checks.

mod certificate;
mod host;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

pub use certificate::{CertStatus, CertificateRecord, ChallengeType, IllegalTransition};
pub use host::{normalize_host, HostPattern};

/// Default time to open a TCP connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time from sending a request upstream to receiving its response head.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default path prefix of a router: everything.
pub const DEFAULT_PATH_PREFIX: &str = "/";

/// Where a router accepts requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entrypoint {
    /// Plain HTTP (port 80 in production).
    Web,
    /// HTTPS (port 443 in production); the default, because a public route
    /// without TLS should be a deliberate choice.
    #[default]
    Websecure,
}

impl Entrypoint {
    /// The entrypoint's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Websecure => "websecure",
        }
    }
}

impl fmt::Display for Entrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Client-certificate policy of a router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mtls {
    /// No client certificate is looked at.
    #[default]
    Off,
    /// A client certificate is verified if presented, and its subject passed upstream.
    Optional,
    /// A client certificate that verifies against the router's client CA is required.
    Required,
}

impl Mtls {
    /// The policy's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// A backend: one or more upstream addresses, balanced round-robin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Unique name, referenced by routers.
    pub name: String,
    /// `host:port` addresses of the upstream servers (HTTP/1.1).
    pub upstreams: Vec<String>,
    /// Time allowed to connect to an upstream.
    #[serde(with = "millis", default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to send its response head.
    #[serde(with = "millis", default = "default_response_timeout")]
    pub response_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

fn default_response_timeout() -> Duration {
    DEFAULT_RESPONSE_TIMEOUT
}

impl Service {
    /// A service with default timeouts.
    pub fn new(name: impl Into<String>, upstreams: Vec<String>) -> Self {
        Self {
            name: name.into(),
            upstreams,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    /// Checks the name and every upstream address.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: String| Error::Model {
            kind: "service",
            name: self.name.clone(),
            message,
        };
        validate_name(&self.name).map_err(&fail)?;
        if self.upstreams.is_empty() {
            return Err(fail(
                "has no upstreams; add at least one \"host:port\" to `upstreams`".into(),
            ));
        }
        for upstream in &self.upstreams {
            validate_upstream(upstream).map_err(&fail)?;
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(fail("timeouts must be greater than zero".into()));
        }
        Ok(())
    }
}

/// A rule sending requests for some hosts and a path prefix to a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    /// Unique name, shown in access logs and errors.
    pub name: String,
    /// Host names, OR-joined; `*.example.com` matches one label.
    pub hosts: Vec<String>,
    /// Requests whose path starts with this prefix match.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// The service requests are forwarded to.
    pub service: String,
    /// The listener the router is attached to.
    #[serde(default)]
    pub entrypoint: Entrypoint,
    /// Breaks ties between routers with the same host and prefix; higher wins.
    #[serde(default)]
    pub priority: i32,
    /// Client-certificate policy.
    #[serde(default)]
    pub mtls: Mtls,
    /// PEM bundle of CAs that client certificates must chain to (mtls != off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_pem: Option<String>,
    /// Name of the issuer that gets this router a certificate automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_issuer: Option<String>,
    /// Challenge type for the automatic certificate (`http-01` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// The certificate record this router depends on: the router is live
    /// only while that certificate is valid (set by the expose operation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// Headers set on every request this router forwards (replacing any the
    /// client sent), e.g. `X-Portcullis-Tenant` for tenant portals.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
}

fn default_path_prefix() -> String {
    DEFAULT_PATH_PREFIX.to_owned()
}

impl Router {
    /// A router for `hosts` under `/` on `websecure`, with no client auth.
    pub fn new(name: impl Into<String>, hosts: Vec<String>, service: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hosts,
            path_prefix: default_path_prefix(),
            service: service.into(),
            entrypoint: Entrypoint::Websecure,
            priority: 0,
            mtls: Mtls::Off,
            client_ca_pem: None,
            tls_issuer: None,
            challenge: None,
            certificate_id: None,
            request_headers: BTreeMap::new(),
        }
    }

    /// Checks the router on its own and lower-cases its hosts.
    ///
    /// References to services are checked by [`DesiredState::merge`], which
    /// sees all of them.
    pub fn normalize(mut self) -> Result<Self, Error> {
        let fail = |message: String| Error::Model {
            kind: "router",
            name: self.name.clone(),
            message,
        };
        validate_name(&self.name).map_err(&fail)?;
        if self.hosts.is_empty() {
            return Err(fail(
                "has no hosts; add at least one name to `hosts`".into(),
            ));
        }
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for host in &self.hosts {
            let pattern = HostPattern::parse(host).map_err(&fail)?;
            hosts.push(pattern.to_string());
        }
        if !self.path_prefix.starts_with('/') {
            return Err(fail(format!(
                "path_prefix \"{}\" must start with \"/\"",
                self.path_prefix
            )));
        }
        match (self.mtls, &self.client_ca_pem) {
            (Mtls::Off, _) => {}
            (_, None) => {
                return Err(fail(format!(
                    "mtls = \"{}\" needs a client CA; set `client_ca` to a PEM file of the CAs client certificates must chain to",
                    self.mtls.as_str()
                )))
            }
            (_, Some(_)) if self.entrypoint == Entrypoint::Web => {
                return Err(fail(
                    "mtls needs TLS; set entrypoint = \"websecure\" or mtls = \"off\"".into(),
                ))
            }
            _ => {}
        }
        for (name, value) in &self.request_headers {
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let valid_value = value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            if !valid_name || !valid_value {
                return Err(fail(format!(
                    "request header \"{name}\" is not a valid header name and value"
                )));
            }
        }
        self.hosts = hosts;
        Ok(self)
    }
}

/// A certificate and its key, given as PEM by the file provider.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCertificate {
    /// Where it came from, for error messages (file path).
    pub source: String,
    /// PEM certificate chain, leaf first.
    pub chain_pem: String,
    /// PEM private key.
    pub key_pem: String,
}

impl fmt::Debug for StaticCertificate {
    /// Never prints the key: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCertificate")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Services, routers and certificates contributed by one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layer {
    /// Named in conflict errors: a file path, or `store`.
    pub source: String,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Routers by name.
    pub routers: BTreeMap<String, Router>,
    /// Static certificates, shared (not copied) with the merged state and
    /// the data plane: thousands of PEM files are read once and kept once.
    pub certificates: Vec<Arc<StaticCertificate>>,
}

impl Layer {
    /// An empty layer named after its source.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }
}

/// The merged, checked desired state of the whole data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Routers by name.
    pub routers: BTreeMap<String, Router>,
    /// Static certificates from every layer.
    pub certificates: Vec<Arc<StaticCertificate>>,
}

impl DesiredState {
    /// Merges layers into one state, refusing clashing names and dangling
    /// service references.
    pub fn merge<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Result<Self, Error> {
        let mut state = Self::default();
        let mut service_source: BTreeMap<&str, &str> = BTreeMap::new();
        let mut router_source: BTreeMap<&str, &str> = BTreeMap::new();
        for layer in layers {
            for (name, service) in &layer.services {
                if let Some(first) = service_source.insert(name, &layer.source) {
                    return Err(conflict("service", name, first, &layer.source));
                }
                state.services.insert(name.clone(), service.clone());
            }
            for (name, router) in &layer.routers {
                if let Some(first) = router_source.insert(name, &layer.source) {
                    return Err(conflict("router", name, first, &layer.source));
                }
                state.routers.insert(name.clone(), router.clone());
            }
            state
                .certificates
                .extend(layer.certificates.iter().cloned());
        }
        for router in state.routers.values() {
            if !state.services.contains_key(&router.service) {
                return Err(Error::Model {
                    kind: "router",
                    name: router.name.clone(),
                    message: format!(
                        "refers to service \"{}\", which is not defined; define it or fix `service`",
                        router.service
                    ),
                });
            }
        }
        Ok(state)
    }
}

fn conflict(kind: &'static str, name: &str, first: &str, second: &str) -> Error {
    Error::Conflict {
        kind,
        name: name.to_owned(),
        first: first.to_owned(),
        second: second.to_owned(),
    }
}

/// Names are used in logs, metrics labels and URLs: keep them plain.
fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("names must be 1-128 characters of letters, digits, '-', '_' or '.'".into())
    }
}

fn validate_upstream(upstream: &str) -> Result<(), String> {
    let bad =
        || format!("upstream \"{upstream}\" is not \"host:port\"; write e.g. \"10.0.0.5:8080\"");
    let (host, port) = upstream.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || upstream.contains('/') {
        return Err(bad());
    }
    Ok(())
}

/// Serializes durations as whole milliseconds, so stored rows stay readable.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests;
