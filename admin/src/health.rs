//! `/healthz` (the process answers) and `/readyz` (it serves configuration).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::server::AdminState;

/// Liveness: the process is up and its admin listener answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses(
        (status = 200, description = "The process answers", content_type = "text/plain", body = String, example = "ok\n"),
    )
)]
pub(crate) fn healthz() -> Response<Full<Bytes>> {
    plain(StatusCode::OK, "ok\n")
}

/// Readiness: the data plane has applied a configuration, so traffic sent
/// here will be routed rather than answered 404.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Configuration applied", content_type = "text/plain", body = String, example = "ready\n"),
        (status = 503, description = "No configuration applied yet", content_type = "text/plain", body = String),
    )
)]
pub(crate) fn readyz(state: &AdminState) -> Response<Full<Bytes>> {
    if state.plane.generation() > 0 {
        plain(StatusCode::OK, "ready\n")
    } else {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "configuration not applied yet\n",
        )
    }
}

pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
