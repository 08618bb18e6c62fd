//! A request for a certificate, validated before anything is created.

use portcullis_config::model::{ChallengeType, HostPattern};
use portcullis_config::settings::acme::IssuerKind;
use portcullis_config::settings::AcmeSettings;
use serde::Deserialize;

use crate::Error;

/// What a caller asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRequest {
    /// First name and CN.
    pub common_name: String,
    /// More names.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Issuer name; the configured default when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Challenge type; `http-01` when absent.
    #[serde(default)]
    pub challenge_type: Option<String>,
    /// ACME account contact; `acme.email` when absent.
    #[serde(default)]
    pub acme_email: Option<String>,
    /// DNS credential for dns-01.
    #[serde(default)]
    pub dns_credential_id: Option<String>,
}

/// A request after validation: names normalized, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validated {
    pub(crate) names: Vec<String>,
    pub(crate) issuer: String,
    pub(crate) challenge_type: ChallengeType,
    pub(crate) acme_email: Option<String>,
    pub(crate) dns_credential_id: Option<String>,
}

impl CertRequest {
    /// Checks the request without acting on it (nothing is created).
    pub fn check(&self, settings: &AcmeSettings) -> Result<(), Error> {
        self.validate(settings).map(|_| ())
    }

    /// Checks every field; the first problem is returned, naming its field.
    pub(crate) fn validate(&self, settings: &AcmeSettings) -> Result<Validated, Error> {
        let invalid =
            |field: &'static str, message: String| Error::InvalidRequest { field, message };
        let mut names: Vec<String> = Vec::with_capacity(1 + self.sans.len());
        for (field, name) in std::iter::once(("common_name", &self.common_name))
            .chain(self.sans.iter().map(|s| ("sans", s)))
        {
            let pattern = HostPattern::parse(name).map_err(|m| invalid(field, m))?;
            let name = pattern.to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.len() > 100 {
            return Err(invalid("sans", "at most 100 names per certificate".into()));
        }
        let issuer = self
            .issuer
            .clone()
            .unwrap_or_else(|| settings.default_issuer.clone());
        let Some(issuer_settings) = settings.issuer(&issuer) else {
            let known: Vec<&str> = settings.issuers.keys().map(String::as_str).collect();
            return Err(invalid(
                "issuer",
                format!(
                    "\"{issuer}\" is not configured; use one of: {}",
                    known.join(", ")
                ),
            ));
        };
        let challenge_type = match &self.challenge_type {
            Some(text) => ChallengeType::parse(text).map_err(|m| invalid("challenge_type", m))?,
            None => ChallengeType::Http01,
        };
        let acme_issuer = matches!(issuer_settings.kind, IssuerKind::Acme { .. });
        if acme_issuer {
            if let Some(wildcard) = names.iter().find(|n| n.starts_with("*.")) {
                if challenge_type != ChallengeType::Dns01 {
                    return Err(invalid(
                        "challenge_type",
                        format!("{wildcard} is a wildcard: CAs validate wildcards only over dns-01 (RFC 8555 §7.1.3); set challenge_type = \"dns-01\""),
                    ));
                }
            }
            if challenge_type == ChallengeType::Dns01 && self.dns_credential_id.is_none() {
                return Err(invalid(
                    "dns_credential_id",
                    "is required for dns-01: the id of a DNS provider credential (see /api/v1/acme/dns-credentials)".into(),
                ));
            }
        }
        let acme_email = self.acme_email.clone().or_else(|| settings.email.clone());
        if let Some(email) = &acme_email {
            if !email.contains('@') || email.contains(char::is_whitespace) {
                return Err(invalid(
                    "acme_email",
                    format!("\"{email}\" is not an email address"),
                ));
            }
        }
        Ok(Validated {
            names,
            issuer,
            challenge_type,
            acme_email,
            dns_credential_id: self
                .dns_credential_id
                .clone()
                .filter(|_| challenge_type == ChallengeType::Dns01),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AcmeSettings {
        portcullis_config::Settings::embedded().acme
    }

    #[test]
    fn names_are_normalized_and_deduplicated() {
        let v = CertRequest {
            common_name: "A.Example.com".into(),
            sans: vec!["b.example.com".into(), "a.example.com".into()],
            ..CertRequest::default()
        }
        .validate(&settings())
        .unwrap();
        assert_eq!(v.names, vec!["a.example.com", "b.example.com"]);
        assert_eq!(v.issuer, "internal-ca");
        assert_eq!(v.challenge_type, ChallengeType::Http01);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                CertRequest {
                    common_name: "bad name".into(),
                    ..Default::default()
                },
                "common_name",
            ),
            (
                CertRequest {
                    common_name: "a.test".into(),
                    sans: vec!["-x.test".into()],
                    ..Default::default()
                },
                "sans",
            ),
            (
                CertRequest {
                    common_name: "a.test".into(),
                    issuer: Some("nope".into()),
                    ..Default::default()
                },
                "issuer",
            ),
            (
                CertRequest {
                    common_name: "a.test".into(),
                    challenge_type: Some("http01".into()),
                    ..Default::default()
                },
                "challenge_type",
            ),
            (
                CertRequest {
                    common_name: "*.a.test".into(),
                    issuer: Some("letsencrypt-staging".into()),
                    ..Default::default()
                },
                "challenge_type",
            ),
            (
                CertRequest {
                    common_name: "a.test".into(),
                    acme_email: Some("x".into()),
                    ..Default::default()
                },
                "acme_email",
            ),
        ];
        for (request, field) in cases {
            match request.validate(&settings()) {
                Err(Error::InvalidRequest { field: f, .. }) => assert_eq!(f, field, "{request:?}"),
                other => panic!("{request:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn wildcard_over_http01_names_dns01_as_the_fix() {
        let err = CertRequest {
            common_name: "*.a.test".into(),
            issuer: Some("letsencrypt-prod".into()),
            challenge_type: Some("http-01".into()),
            ..Default::default()
        }
        .validate(&settings())
        .unwrap_err()
        .to_string();
        assert!(err.contains("dns-01"), "{err}");
    }
}
