//! The "expose a service publicly" request: validation and what it builds.
//!
//! Every field is checked before anything is created, and every problem is
//! reported at once, so a client fixes its request in one round trip.

use std::collections::BTreeMap;

use portcullis_config::model::template::RouterTemplate;
use portcullis_config::model::{ChallengeType, Entrypoint, HostPattern, Mtls, Router, Service};
use portcullis_config::settings::AcmeSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Issuer of exposed services when the request names none: the public web trusts it.
pub(crate) const DEFAULT_EXPOSE_ISSUER: &str = "letsencrypt-prod";

/// The request body of `POST /api/v1/ingress/expose`.
///
/// Every field is optional to the parser so that validation can report every
/// problem at once; the document marks the ones validation requires.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExposeRequest {
    /// Public FQDN; the certificate CN.
    #[schema(value_type = String, required = true, example = "app.example.com")]
    pub service_hostname: Option<String>,
    /// `http` or `https`.
    #[schema(value_type = crate::openapi::ServiceProtocolName, required = true)]
    pub service_protocol: Option<String>,
    /// 1-65535.
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 65535)]
    pub backend_port: Option<i64>,
    /// Address or hostname of the backend.
    pub target_host: Option<String>,
    /// Name of an existing service.
    pub target_service: Option<String>,
    /// Issuer; `letsencrypt-prod` by default.
    pub tls_issuer: Option<String>,
    /// `http-01` (default), `tls-alpn-01`, `dns-01`.
    #[schema(value_type = Option<crate::openapi::ChallengeTypeName>)]
    pub challenge_type: Option<String>,
    /// Required for https + dns-01.
    pub dns_credential_id: Option<String>,
    /// More hostnames, OR-joined into the host match and the certificate.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Template name; `single` by default.
    pub router_template: Option<String>,
}

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct FieldError {
    /// The field, as named in the request.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Where the backend is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Target {
    /// A host (address or name) and the backend port.
    Host {
        /// Address or name.
        host: String,
        /// Port.
        port: u16,
    },
    /// An existing service, used as it is.
    Service {
        /// Its name.
        name: String,
    },
}

/// A validated expose request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct ExposeSpec {
    /// Lower-case public hostname.
    pub hostname: String,
    /// Every host the routers match: hostname, then extra hosts.
    pub hosts: Vec<String>,
    /// True for https.
    pub https: bool,
    /// The backend.
    pub target: Target,
    /// Issuer (https).
    pub issuer: String,
    /// Challenge (https).
    #[schema(value_type = crate::openapi::ChallengeTypeName)]
    pub challenge_type: ChallengeType,
    /// Template name.
    pub template: String,
    /// DNS credential (dns-01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_credential_id: Option<String>,
}

/// What validation needs to know about the world.
pub(crate) struct Context<'a> {
    pub(crate) acme: &'a AcmeSettings,
    pub(crate) templates: &'a BTreeMap<String, RouterTemplate>,
    pub(crate) services: &'a BTreeMap<String, Service>,
    pub(crate) has_mtls_ca: bool,
}

impl ExposeRequest {
    /// Checks every field; returns every problem.
    pub(crate) fn validate(&self, context: &Context<'_>) -> Result<ExposeSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            })
        };
        let hostname = match self.service_hostname.as_deref().map(str::trim) {
            None | Some("") => {
                fail(
                    "service_hostname",
                    "is required: the public hostname, e.g. app.example.com".into(),
                );
                None
            }
            Some(text) => match public_hostname(text) {
                Ok(name) => Some(name),
                Err(message) => {
                    fail("service_hostname", message);
                    None
                }
            },
        };
        let https = match self.service_protocol.as_deref() {
            Some("https") => Some(true),
            Some("http") => Some(false),
            None => {
                fail(
                    "service_protocol",
                    "is required: \"http\" or \"https\"".into(),
                );
                None
            }
            Some(other) => {
                fail(
                    "service_protocol",
                    format!("\"{other}\" is not \"http\" or \"https\""),
                );
                None
            }
        };
        let port = match self.backend_port {
            None => {
                fail(
                    "backend_port",
                    "is required: the backend's port, 1-65535".into(),
                );
                None
            }
            Some(port) => match u16::try_from(port) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    fail("backend_port", format!("{port} is outside 1-65535"));
                    None
                }
            },
        };
        let target = match (&self.target_host, &self.target_service) {
            (Some(_), Some(_)) => {
                fail(
                    "target_host",
                    "give target_host or target_service, not both".into(),
                );
                fail(
                    "target_service",
                    "give target_host or target_service, not both".into(),
                );
                None
            }
            (None, None) => {
                fail("target_host", "give target_host (the backend's address) or target_service (an existing service)".into());
                None
            }
            (Some(host), None) => match backend_host(host) {
                Ok(host) => port.map(|port| Target::Host { host, port }),
                Err(message) => {
                    fail("target_host", message);
                    None
                }
            },
            (None, Some(name)) => {
                if context.services.contains_key(name) {
                    Some(Target::Service { name: name.clone() })
                } else {
                    fail(
                        "target_service",
                        format!("no service named \"{name}\" exists; create it or use target_host"),
                    );
                    None
                }
            }
        };
        let issuer = self
            .tls_issuer
            .clone()
            .unwrap_or_else(|| DEFAULT_EXPOSE_ISSUER.to_owned());
        if context.acme.issuer(&issuer).is_none() {
            let known: Vec<&str> = context.acme.issuers.keys().map(String::as_str).collect();
            fail(
                "tls_issuer",
                format!(
                    "\"{issuer}\" is not configured; use one of: {}",
                    known.join(", ")
                ),
            );
        }
        let challenge_type = match self.challenge_type.as_deref() {
            None => Some(ChallengeType::Http01),
            Some(text) => match ChallengeType::parse(text) {
                Ok(t) => Some(t),
                Err(message) => {
                    fail("challenge_type", message);
                    None
                }
            },
        };
        if https == Some(true)
            && challenge_type == Some(ChallengeType::Dns01)
            && self.dns_credential_id.is_none()
        {
            fail(
                "dns_credential_id",
                "is required for dns-01: the id of a DNS provider credential".into(),
            );
        }
        let mut hosts: Vec<String> = hostname.iter().cloned().collect();
        for (index, extra) in self.extra_hosts.iter().enumerate() {
            match public_hostname(extra.trim()) {
                Ok(name) if hosts.contains(&name) => {
                    fail(
                        &format!("extra_hosts[{index}]"),
                        format!("\"{name}\" is listed twice"),
                    );
                }
                Ok(name) => hosts.push(name),
                Err(message) => fail(&format!("extra_hosts[{index}]"), message),
            }
        }
        let template = self
            .router_template
            .clone()
            .unwrap_or_else(|| "single".to_owned());
        match context.templates.get(&template) {
            None => {
                let known: Vec<&str> = context.templates.keys().map(String::as_str).collect();
                fail(
                    "router_template",
                    format!(
                        "\"{template}\" is not a template; use one of: {}",
                        known.join(", ")
                    ),
                );
            }
            Some(routes) => {
                if https == Some(false) && routes.iter().any(|r| r.mtls != Mtls::Off) {
                    fail("router_template", format!("\"{template}\" has mTLS routers, which need service_protocol \"https\""));
                } else if routes.iter().any(|r| r.mtls != Mtls::Off) && !context.has_mtls_ca {
                    fail("router_template", format!("\"{template}\" has mTLS routers; set admin.mtls_client_ca to the client CA bundle first"));
                }
                for route in routes {
                    if let Some(service) = &route.service {
                        if !context.services.contains_key(service) {
                            fail("router_template", format!("template \"{template}\" names service \"{service}\", which does not exist"));
                        }
                    }
                }
            }
        }
        match (hostname, https, target, challenge_type) {
            (Some(hostname), Some(https), Some(target), Some(challenge_type))
                if errors.is_empty() =>
            {
                Ok(ExposeSpec {
                    hostname,
                    hosts,
                    https,
                    target,
                    issuer,
                    challenge_type,
                    template,
                    dns_credential_id: self
                        .dns_credential_id
                        .clone()
                        .filter(|_| challenge_type == ChallengeType::Dns01),
                })
            }
            _ => Err(errors),
        }
    }
}

/// RFC 1123 host name, lower-cased: LDH labels, no trailing dot, not an IP, at least two labels.
fn public_hostname(text: &str) -> Result<String, String> {
    if text.ends_with('.') {
        return Err(format!("\"{text}\" ends with a dot; write it without"));
    }
    if text.starts_with("*.") {
        return Err(format!(
            "\"{text}\" is a wildcard; expose a concrete hostname"
        ));
    }
    let name = match HostPattern::parse(text)? {
        HostPattern::Exact(name) => name,
        HostPattern::Wildcard(_) => return Err(format!("\"{text}\" is a wildcard")),
    };
    if name.contains('_') {
        return Err(format!(
            "\"{text}\" has an underscore; hostnames use letters, digits and '-'"
        ));
    }
    if !name.contains('.') {
        return Err(format!(
            "\"{text}\" is not a fully qualified name; write e.g. {text}.example.com"
        ));
    }
    Ok(name)
}

/// An IP address or a host name, without scheme or port.
fn backend_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    if text.contains("://") || text.contains(':') || text.contains('/') {
        return Err(format!(
            "\"{text}\" must be a bare address or host name; put the port in backend_port"
        ));
    }
    match HostPattern::parse(text)? {
        HostPattern::Exact(name) => Ok(name),
        HostPattern::Wildcard(_) => Err(format!("\"{text}\" is a wildcard")),
    }
}

impl ExposeSpec {
    /// `expose-<hostname>`: one per hostname, so re-runs reuse it.
    pub(crate) fn service_name(&self) -> String {
        match &self.target {
            Target::Service { name } => name.clone(),
            Target::Host { .. } => format!("expose-{}", self.hostname),
        }
    }

    /// The service this plan writes, or `None` when it uses an existing one.
    pub(crate) fn service(&self) -> Option<Service> {
        match &self.target {
            Target::Host { host, port } => {
                let upstream = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                Some(Service::new(self.service_name(), vec![upstream]))
            }
            Target::Service { .. } => None,
        }
    }

    /// The routers of the template, pointing at the service (and certificate).
    pub(crate) fn routers(
        &self,
        template: &RouterTemplate,
        certificate_id: Option<&str>,
        client_ca_pem: Option<&str>,
    ) -> Vec<Router> {
        template
            .iter()
            .map(|route| {
                let mut router = Router::new(
                    format!("expose-{}-{}", self.hostname, route.suffix),
                    self.hosts.clone(),
                    route.service.clone().unwrap_or_else(|| self.service_name()),
                );
                router.path_prefix.clone_from(&route.path_prefix);
                router.priority = route.priority;
                router.entrypoint = if self.https {
                    Entrypoint::Websecure
                } else {
                    Entrypoint::Web
                };
                router.mtls = route.mtls;
                if route.mtls != Mtls::Off {
                    router.client_ca_pem = client_ca_pem.map(str::to_owned);
                }
                router.certificate_id = certificate_id.map(str::to_owned);
                router
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
