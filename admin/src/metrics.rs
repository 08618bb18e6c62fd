//! `GET /metrics`: Prometheus text format, no token (the admin listener is
//! private by default, and scrapers rarely carry one).

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

use crate::plans::{self, PlanStatus};
use crate::server::AdminState;

/// Prometheus metrics: the data plane, certificates, plans by status.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
    )
)]
pub(crate) async fn render(state: &AdminState) -> Response<Full<Bytes>> {
    let mut out = String::with_capacity(8 * 1024);
    state.plane.render_metrics(&mut out);
    state.certificates.render_metrics(&mut out).await;
    if state.config.tenants.is_some() {
        state
            .tenant_metrics
            .render(&mut out, state.store.as_ref())
            .await;
    }
    if let Ok(all) = plans::list(state.store.as_ref()).await {
        out.push_str("# HELP portcullis_plans Plans by status.\n# TYPE portcullis_plans gauge\n");
        for status in [
            PlanStatus::AwaitingApproval,
            PlanStatus::Rejected,
            PlanStatus::Running,
            PlanStatus::Succeeded,
            PlanStatus::Failed,
        ] {
            let count = all.iter().filter(|p| p.status == status).count();
            out.push_str(&format!(
                "portcullis_plans{{status=\"{}\"}} {count}\n",
                status.as_str()
            ));
        }
    }
    let mut response = Response::new(Full::new(Bytes::from(out)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
