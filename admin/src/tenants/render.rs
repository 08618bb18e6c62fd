//! The tenant reconciler: renders every tenant router from all rows and
//! makes the store match, in one batch.
//!
//! It owns the `tenant-` router names and the `tenant-portal` service and
//! nothing else. Running it twice changes nothing the second time.

use std::collections::BTreeMap;

use portcullis_config::model::{Router, Service};
use portcullis_config::settings::tenants::TenantSettings;
use portcullis_config::store::Change;

use super::{DomainStatus, TenantDomain};
use crate::server::AdminState;

/// The service vanity and canonical hosts route to.
pub(crate) const SERVICE: &str = "tenant-portal";
/// Prefix of every router the reconciler owns.
pub(crate) const PREFIX: &str = "tenant-";
/// The header the portal backend reads the tenant from.
pub(crate) const TENANT_HEADER: &str = "x-portcullis-tenant";

fn router(name: String, host: &str, tenant: &str, certificate_id: Option<&str>) -> Router {
    let mut router = Router::new(name, vec![host.to_owned()], SERVICE);
    router.certificate_id = certificate_id.map(str::to_owned);
    router
        .request_headers
        .insert(TENANT_HEADER.to_owned(), tenant.to_owned());
    router
}

/// The routers all rows want: the canonical host of every tenant with a
/// row, and the vanity domain of every deploying or active row (tied to its
/// certificate, so it is live only while that certificate is valid).
pub(crate) fn desired(rows: &[TenantDomain]) -> BTreeMap<String, Router> {
    let mut routers = BTreeMap::new();
    for row in rows.iter().filter(|r| r.status != DomainStatus::Disabled) {
        let name = format!("{PREFIX}{}-canonical", row.tenant_id);
        routers.insert(
            name.clone(),
            router(name, &row.canonical_host, &row.tenant_id, None),
        );
        if matches!(row.status, DomainStatus::Deploying | DomainStatus::Active) {
            if let Some(certificate) = &row.certificate_id {
                let name = format!("{PREFIX}{}-domain", row.tenant_id);
                routers.insert(
                    name.clone(),
                    router(name, &row.domain, &row.tenant_id, Some(certificate)),
                );
            }
        }
    }
    routers
}

/// Makes the store's tenant routers equal to [`desired`]; returns whether
/// anything changed.
pub(crate) async fn reconcile(
    state: &AdminState,
    settings: &TenantSettings,
) -> Result<bool, String> {
    let rows = super::all(state.store.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    let want = desired(&rows);
    let snapshot = state.store.snapshot().await.map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    let service = Service::new(SERVICE, settings.portal_upstreams.clone());
    if snapshot.services.get(SERVICE) != Some(&service) {
        changes.push(Change::PutService(service));
    }
    for (name, router) in &want {
        let mut normalized = router.clone();
        normalized.hosts = normalized
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if snapshot.routers.get(name) != Some(&normalized) {
            changes.push(Change::PutRouter(router.clone()));
        }
    }
    for name in snapshot.routers.keys() {
        if name.starts_with(PREFIX) && !want.contains_key(name) {
            changes.push(Change::DeleteRouter(name.clone()));
        }
    }
    if changes.is_empty() {
        return Ok(false);
    }
    tracing::info!(changes = changes.len(), "tenant routes reconciled");
    state
        .store
        .apply(changes, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Keeps one certificate for `*.<canonical_base>` and `<canonical_base>`
/// (dns-01 through the configured credential, or the internal CA): the
/// request is idempotent, returning the valid or in-progress certificate.
pub(crate) async fn ensure_canonical_certificate(state: &AdminState, settings: &TenantSettings) {
    let internal = settings.wildcard_issuer == portcullis_config::settings::acme::INTERNAL_CA;
    let credential = match &settings.wildcard_dns_credential {
        Some(wanted) => match state.certificates.credentials().list().await {
            Ok(all) => match all
                .into_iter()
                .find(|c| &c.id == wanted || &c.name == wanted)
            {
                Some(found) => Some(found.id),
                None => {
                    tracing::warn!(credential = %wanted, "tenants.wildcard_dns_credential names no stored DNS credential");
                    return;
                }
            },
            Err(_) => return,
        },
        None if internal => None,
        None => return,
    };
    let request = portcullis_acme::CertRequest {
        common_name: format!("*.{}", settings.canonical_base),
        sans: vec![settings.canonical_base.clone()],
        issuer: Some(settings.wildcard_issuer.clone()),
        challenge_type: credential.as_ref().map(|_| "dns-01".to_owned()),
        dns_credential_id: credential,
        ..portcullis_acme::CertRequest::default()
    };
    if let Err(error) = state
        .certificates
        .request(&request, "tenants:canonical")
        .await
    {
        tracing::warn!(%error, "could not request the canonical wildcard certificate");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DomainStatus, TenantDomain, Verification};
    use super::*;

    fn row(tenant: &str, status: DomainStatus) -> TenantDomain {
        TenantDomain {
            id: tenant.into(),
            tenant_id: tenant.into(),
            domain: format!("{tenant}.customer.test"),
            canonical_host: format!("{tenant}.portal.test"),
            status,
            status_message: None,
            last_checked_at: None,
            verification_method: "cname".into(),
            verification_details: Verification::default(),
            certificate_id: Some(format!("cert-{tenant}")),
            drift_since: None,
            requested_at: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn only_deploying_and_active_domains_are_routed_and_rendering_is_stable() {
        let rows = vec![
            row("a", DomainStatus::Active),
            row("b", DomainStatus::CertificateIssuing),
            row("c", DomainStatus::Disabled),
        ];
        let first = desired(&rows);
        let names: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "tenant-a-canonical",
                "tenant-a-domain",
                "tenant-b-canonical"
            ]
        );
        assert_eq!(
            first["tenant-a-domain"].certificate_id.as_deref(),
            Some("cert-a")
        );
        assert_eq!(first["tenant-a-domain"].request_headers[TENANT_HEADER], "a");
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(
            desired(&reversed),
            first,
            "the order of rows does not matter"
        );
    }
}
