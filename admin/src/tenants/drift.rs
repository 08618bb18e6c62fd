//! Drift: an active domain whose CNAME changes or disappears.
//!
//! The first check that sees it sets a warning; if the CNAME has not come
//! back after the grace period, the domain is unrouted, its certificate is
//! no longer renewed, and its status becomes `dns_failed` saying what the
//! CNAME now points at. Nobody else's traffic is ever served under a
//! tenant's certificate.

use std::sync::Arc;

use portcullis_config::settings::tenants::TenantSettings;
use portcullis_config::store::Expect;

use super::{render, DomainStatus};
use crate::server::AdminState;

/// Checks every active domain every `drift_interval`, until the task is dropped.
pub(crate) fn spawn(
    state: AdminState,
    settings: Arc<TenantSettings>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(settings.drift_interval).await;
            check_all(&state, &settings).await;
            render::ensure_canonical_certificate(&state, &settings).await;
            // Periodic reconcile: repairs routes changed behind our back.
            if let Err(error) = render::reconcile(&state, &settings).await {
                tracing::error!(%error, "tenant reconcile failed");
            }
            if let Some(dir) = &settings.export_dir {
                if let Err(error) =
                    super::export::export(state.store.as_ref(), &settings, dir, settings.export_git)
                        .await
                {
                    tracing::warn!(%error, "tenant export failed");
                }
            }
        }
    })
}

/// One pass over the active domains.
pub(crate) async fn check_all(state: &AdminState, settings: &TenantSettings) {
    let Ok(resolver) =
        portcullis_acme::dns::resolver::Resolver::new(&state.certificates.settings().dns_resolvers)
    else {
        return;
    };
    let Ok(rows) = super::all(state.store.as_ref()).await else {
        return;
    };
    let mut unrouted = false;
    for row in rows
        .into_iter()
        .filter(|r| r.status == DomainStatus::Active)
    {
        let Ok(Some((mut row, revision))) = super::load(state.store.as_ref(), &row.tenant_id).await
        else {
            continue;
        };
        let seen = match resolver.resolve_cname_chain(&row.domain).await {
            Ok(target) if target != row.domain => Some(target),
            Ok(_) => None,
            // A failing lookup is not evidence of drift.
            Err(error) => {
                tracing::debug!(domain = %row.domain, %error, "drift check lookup failed");
                continue;
            }
        };
        let now = portcullis_acme::unix_now();
        row.last_checked_at = Some(now);
        row.verification_details.last_seen.clone_from(&seen);
        let shown = seen.clone().unwrap_or_else(|| "no CNAME".into());
        if seen.as_deref() == Some(row.canonical_host.as_str()) {
            row.drift_since = None;
            row.status_message = None;
        } else {
            let since = *row.drift_since.get_or_insert(now);
            let grace = i64::try_from(settings.drift_grace.as_secs()).unwrap_or(i64::MAX);
            if now - since >= grace {
                let message = format!(
                    "{} now points at {shown}, not {}: unrouted after the grace period; fix the CNAME and retry with PUT",
                    row.domain, row.canonical_host
                );
                if row.advance(DomainStatus::DnsFailed, Some(message)) {
                    unrouted = true;
                    state.tenant_metrics.failure("drift");
                    if let Some(id) = &row.certificate_id {
                        if let Err(error) = state.certificates.set_auto_renew(id, false).await {
                            tracing::warn!(%error, "could not stop renewal of a drifted domain's certificate");
                        }
                    }
                    tracing::warn!(tenant = %row.tenant_id, domain = %row.domain, seen = %shown, stage = "drift", "domain unrouted after CNAME drift");
                }
            } else {
                row.status_message = Some(format!(
                    "warning: {} now points at {shown}, not {}; it will be unrouted if not fixed within the grace period",
                    row.domain, row.canonical_host
                ));
            }
        }
        let _ = super::save(state.store.as_ref(), &row, Expect::Revision(revision)).await;
    }
    if unrouted {
        if let Err(error) = render::reconcile(state, settings).await {
            tracing::error!(%error, "tenant reconcile failed");
        }
    }
}
