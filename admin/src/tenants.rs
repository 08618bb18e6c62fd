//! Tenant custom domains: one vanity hostname per tenant, verified by CNAME,
//! certified over HTTP-01, routed to the portal with the tenant's header.
//!
//! A row's status is a state machine ([`DomainStatus::can_become`]); the
//! workflow ([`workflow`]) persists each step's result before the next
//! begins, so a restart resumes from the last persisted step. Routes are
//! never written by the workflow directly: the reconciler ([`render`])
//! renders the whole desired set of tenant routers from all rows and swaps
//! it in, pruning what is no longer wanted.

pub(crate) mod api;
pub(crate) mod drift;
pub mod export;
pub(crate) mod metrics;
mod probe_tls;
pub(crate) mod render;
pub(crate) mod workflow;

use portcullis_config::store::{space, Expect};
use portcullis_config::Store;
use serde::{Deserialize, Serialize};

/// Where a tenant's domain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DomainStatus {
    /// Waiting for the tenant to create the CNAME.
    PendingDns,
    /// Checking the CNAME.
    VerifyingDns,
    /// The CNAME never pointed at the canonical host (or stopped doing so).
    DnsFailed,
    /// Verified; a certificate is next.
    PendingCertificate,
    /// The HTTP-01 order runs.
    CertificateIssuing,
    /// The CA refused.
    CertificateFailed,
    /// Routes are being rendered and probed.
    Deploying,
    /// Served.
    Active,
    /// Removed by the tenant (or an operator).
    Disabled,
}

impl DomainStatus {
    /// The status as the API shows it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PendingDns => "pending_dns",
            Self::VerifyingDns => "verifying_dns",
            Self::DnsFailed => "dns_failed",
            Self::PendingCertificate => "pending_certificate",
            Self::CertificateIssuing => "certificate_issuing",
            Self::CertificateFailed => "certificate_failed",
            Self::Deploying => "deploying",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Whether the workflow may move a row from `self` to `to`.
    pub(crate) fn can_become(self, to: DomainStatus) -> bool {
        use DomainStatus::*;
        matches!(
            (self, to),
            (PendingDns, VerifyingDns)
                | (VerifyingDns, PendingCertificate | DnsFailed)
                | (PendingCertificate, CertificateIssuing)
                | (CertificateIssuing, Deploying | CertificateFailed)
                | (Deploying, Active | CertificateFailed)
                // Drift: an active domain whose CNAME left loses its routes.
                | (Active, DnsFailed)
                // Retry with PUT.
                | (DnsFailed | CertificateFailed | Disabled, PendingDns)
                // Removal, from anywhere but disabled.
                | (PendingDns | VerifyingDns | DnsFailed | PendingCertificate | CertificateIssuing
                    | CertificateFailed | Deploying | Active, Disabled)
        )
    }

    /// Statuses the workflow is still working on.
    pub(crate) fn in_progress(self) -> bool {
        matches!(
            self,
            Self::PendingDns
                | Self::VerifyingDns
                | Self::PendingCertificate
                | Self::CertificateIssuing
                | Self::Deploying
        )
    }
}

/// What was expected of and seen in DNS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Verification {
    /// The CNAME target the domain must have.
    pub expected_cname: String,
    /// What the last check found (`None`: no CNAME).
    pub last_seen: Option<String>,
    /// Matching checks in a row.
    pub consecutive_matches: u32,
}

/// One tenant's portal domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct TenantDomain {
    /// Stable id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The vanity domain, lower-case.
    pub domain: String,
    /// `<tenant>.<canonical_base>`, stored so DNS guidance stays stable.
    pub canonical_host: String,
    /// Where it is.
    pub status: DomainStatus,
    /// Guidance for the tenant.
    pub status_message: Option<String>,
    /// Last DNS check, Unix seconds.
    pub last_checked_at: Option<i64>,
    /// Always `cname`.
    pub verification_method: String,
    /// Expected and seen CNAME.
    pub verification_details: Verification,
    /// The domain's certificate.
    pub certificate_id: Option<String>,
    /// Since when an active domain's CNAME no longer matches, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_since: Option<i64>,
    /// When the current domain was requested (PUT), Unix seconds.
    #[serde(default)]
    pub requested_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl TenantDomain {
    /// Moves to `to` if allowed, with a message.
    pub(crate) fn advance(&mut self, to: DomainStatus, message: Option<String>) -> bool {
        if !self.status.can_become(to) {
            tracing::warn!(tenant = %self.tenant_id, from = self.status.as_str(), to = to.as_str(), "refused domain transition");
            return false;
        }
        self.status = to;
        self.status_message = message;
        self.updated_at = portcullis_acme::unix_now();
        true
    }
}

pub(crate) async fn load(
    store: &dyn Store,
    tenant: &str,
) -> Result<Option<(TenantDomain, u64)>, portcullis_config::Error> {
    Ok(store
        .get(space::TENANT_DOMAINS, tenant)
        .await?
        .and_then(|e| {
            serde_json::from_slice(&e.value)
                .ok()
                .map(|d| (d, e.revision))
        }))
}

pub(crate) async fn all(store: &dyn Store) -> Result<Vec<TenantDomain>, portcullis_config::Error> {
    Ok(store
        .list(space::TENANT_DOMAINS)
        .await?
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

pub(crate) async fn save(
    store: &dyn Store,
    row: &TenantDomain,
    expect: Expect,
) -> Result<u64, portcullis_config::Error> {
    store
        .put(
            space::TENANT_DOMAINS,
            &row.tenant_id,
            serde_json::to_vec(row).unwrap_or_default(),
            expect,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::DomainStatus::{self, *};

    const ALL: [DomainStatus; 9] = [
        PendingDns,
        VerifyingDns,
        DnsFailed,
        PendingCertificate,
        CertificateIssuing,
        CertificateFailed,
        Deploying,
        Active,
        Disabled,
    ];

    #[test]
    fn the_workflow_moves_forward_and_only_failures_and_removal_go_back() {
        assert!(PendingDns.can_become(VerifyingDns));
        assert!(VerifyingDns.can_become(PendingCertificate));
        assert!(CertificateIssuing.can_become(Deploying));
        assert!(Deploying.can_become(Active));
        assert!(Active.can_become(DnsFailed));
        assert!(
            !Active.can_become(PendingDns),
            "an active domain is not re-requested"
        );
        assert!(!Disabled.can_become(Active));
        assert!(!PendingDns.can_become(Active), "no step is skipped");
        for from in ALL {
            assert!(!from.can_become(from), "{from:?} to itself");
            assert_eq!(from.can_become(Disabled), from != Disabled);
        }
        for retry in [DnsFailed, CertificateFailed, Disabled] {
            assert!(retry.can_become(PendingDns));
        }
    }
}
