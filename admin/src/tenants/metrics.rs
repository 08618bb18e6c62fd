//! Tenant-domain metrics: domains by status (read from the rows when
//! scraped), time from request to active, failures by stage.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_config::histogram::Histogram;

use super::DomainStatus;

/// Counters kept by the workflow.
#[derive(Debug, Default, Clone)]
pub(crate) struct TenantMetrics {
    to_active: Arc<Histogram>,
    failures: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl TenantMetrics {
    pub(crate) fn activated(&self, after: Duration) {
        self.to_active.observe(after);
    }

    pub(crate) fn failure(&self, stage: &'static str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(stage)
            .or_default() += 1;
    }

    pub(crate) async fn render(&self, out: &mut String, store: &dyn portcullis_config::Store) {
        out.push_str("# HELP portcullis_tenant_domains Tenant domains by status.\n# TYPE portcullis_tenant_domains gauge\n");
        let rows = super::all(store).await.unwrap_or_default();
        for status in [
            DomainStatus::PendingDns,
            DomainStatus::VerifyingDns,
            DomainStatus::DnsFailed,
            DomainStatus::PendingCertificate,
            DomainStatus::CertificateIssuing,
            DomainStatus::CertificateFailed,
            DomainStatus::Deploying,
            DomainStatus::Active,
            DomainStatus::Disabled,
        ] {
            let count = rows.iter().filter(|r| r.status == status).count();
            let _ = writeln!(
                out,
                "portcullis_tenant_domains{{status=\"{}\"}} {count}",
                status.as_str()
            );
        }
        out.push_str("# HELP portcullis_tenant_domain_activation_seconds Time from request to active.\n# TYPE portcullis_tenant_domain_activation_seconds histogram\n");
        self.to_active
            .render(out, "portcullis_tenant_domain_activation_seconds", "");
        out.push_str("# HELP portcullis_tenant_domain_failures_total Workflow failures by stage.\n# TYPE portcullis_tenant_domain_failures_total counter\n");
        for (stage, count) in self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "portcullis_tenant_domain_failures_total{{stage=\"{stage}\"}} {count}"
            );
        }
    }
}
