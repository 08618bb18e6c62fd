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
