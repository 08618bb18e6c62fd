//! Certificate records and their lifecycle.
//!
//! The lifecycle is a state machine: [`CertStatus::transition`] is the only
//! way to move a record, and it refuses moves that make no sense (a revoked
//! certificate becoming valid again, a pending one being renewed). Keeping the
//! rule here, next to the type, means no caller can forget it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a certificate is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Requested; no order placed yet.
    Pending,
    /// An order is under way for a certificate that was never valid.
    Issuing,
    /// Issued and served.
    Valid,
    /// A valid certificate is being replaced; the old one keeps serving.
    Renewing,
    /// Revoked at the issuer. Final: a new issuance makes a new record.
    Revoked,
    /// Issuance failed; `status_message` says why. May be retried.
    Failed,
}

impl CertStatus {
    /// Every status, for exhaustive tests and metrics.
    pub const ALL: [CertStatus; 6] = [
        Self::Pending,
        Self::Issuing,
        Self::Valid,
        Self::Renewing,
        Self::Revoked,
        Self::Failed,
    ];

    /// The status as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issuing => "issuing",
            Self::Valid => "valid",
            Self::Renewing => "renewing",
            Self::Revoked => "revoked",
            Self::Failed => "failed",
        }
    }

    /// Whether a move from `self` to `to` is allowed.
    pub fn can_become(self, to: CertStatus) -> bool {
        use CertStatus::*;
        matches!(
            (self, to),
            (Pending, Issuing | Failed)
                | (Issuing, Valid | Failed)
                | (Valid, Renewing | Revoked)
                // A failed renewal returns to valid (the old certificate
                // still serves, with a message); an expired one fails.
                | (Renewing, Valid | Failed | Revoked)
                | (Failed, Pending)
        )
    }

    /// Moves to `to`, or says why not.
    pub fn transition(self, to: CertStatus) -> Result<CertStatus, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// True while an ACME order may be running for the record.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Pending | Self::Issuing | Self::Renewing)
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused lifecycle move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from} certificate cannot become {to}")]
pub struct IllegalTransition {
    /// The current status.
    pub from: CertStatus,
    /// The requested status.
    pub to: CertStatus,
}

/// How the issuer checks control of the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeType {
    /// RFC 8555 §8.3: a token served on port 80.
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737: a certificate presented on port 443 for ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.4: a TXT record at `_acme-challenge.NAME`.
    #[serde(rename = "dns-01")]
    Dns01,
}

impl ChallengeType {
    /// The challenge type as written in config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Dns01 => "dns-01",
        }
    }

    /// Parses `http-01`, `tls-alpn-01` or `dns-01`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "http-01" => Ok(Self::Http01),
            "tls-alpn-01" => Ok(Self::TlsAlpn01),
            "dns-01" => Ok(Self::Dns01),
            other => Err(format!(
                "\"{other}\" is not a challenge type; use \"http-01\", \"tls-alpn-01\" or \"dns-01\""
            )),
        }
    }
}

impl fmt::Display for ChallengeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate's metadata. Its private key is only named here (by a
/// secret-store label); the key itself never enters this record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// Stable identifier.
    pub id: String,
    /// The first name; the subject CN.
    pub common_name: String,
    /// Further names (subjectAltName also holds the common name).
    #[serde(default)]
    pub sans: Vec<String>,
    /// The issuer asked for.
    pub issuer: String,
    /// The issuer that actually signed it (differs after a fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
    /// How control of the names is proven.
    pub challenge_type: ChallengeType,
    /// ACME account contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,
    /// DNS provider credential for dns-01.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_credential_id: Option<String>,
    /// Lifecycle state.
    pub status: CertStatus,
    /// Why it failed, or a warning (e.g. a failed renewal), verbatim from the CA where it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Validity start, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// Validity end, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// Serial number, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// SHA-256 of the leaf's DER, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<String>,
    /// PEM chain, leaf first (public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_pem: Option<String>,
    /// Secret-store label of the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// Who asked for it: `api`, or `router:NAME` for automatic certificates.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Whether the renewal task keeps it renewed.
    #[serde(default = "default_true")]
    pub auto_renew: bool,
    /// Failed attempts in a row, for backoff.
    #[serde(default)]
    pub failures: u32,
    /// Earliest time of the next attempt after a failure, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
    /// Start of the renewal window suggested by the CA (RFC 9773), Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_window_start: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

fn default_owner() -> String {
    "api".to_owned()
}

fn default_true() -> bool {
    true
}

impl CertificateRecord {
    /// Every name, common name first.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec![self.common_name.clone()];
        for san in &self.sans {
            if !names.contains(san) {
                names.push(san.clone());
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_legal_move_is_allowed_and_every_other_refused() {
        use CertStatus::*;
        let legal = [
            (Pending, Issuing),
            (Pending, Failed),
            (Issuing, Valid),
            (Issuing, Failed),
            (Valid, Renewing),
            (Valid, Revoked),
            (Renewing, Valid),
            (Renewing, Failed),
            (Renewing, Revoked),
            (Failed, Pending),
        ];
        for from in CertStatus::ALL {
            for to in CertStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn revoked_is_final() {
        for to in CertStatus::ALL {
            let err = CertStatus::Revoked.transition(to).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("a revoked certificate cannot become {to}")
            );
        }
    }

    #[test]
    fn challenge_types_round_trip() {
        for t in [
            ChallengeType::Http01,
            ChallengeType::TlsAlpn01,
            ChallengeType::Dns01,
        ] {
            assert_eq!(ChallengeType::parse(t.as_str()), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert!(ChallengeType::parse("http01")
            .unwrap_err()
            .contains("http-01"));
    }
}
