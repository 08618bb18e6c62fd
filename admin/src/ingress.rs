//! `/api/v1/ingress/*` and `/api/v1/proxy/compose`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_config::model::{CertStatus, Entrypoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_error::{ApiError, ErrorBody};
use crate::expose::{Context, ExposeRequest};
use crate::plans::{Plan, PlanKind, Step};
use crate::server::AdminState;
use crate::tokens::TokenRecord;
use crate::{json, plans_api};

/// `POST /api/v1/ingress/expose`: validates everything, then records a plan.
#[utoipa::path(
    post,
    path = "/api/v1/ingress/expose",
    operation_id = "expose_service",
    tag = "ingress",
    request_body = ExposeRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Plan recorded: running, or awaiting approval", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `ingress.manage`", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body, or every rejected field listed in `fields`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn expose(
    state: &AdminState,
    token: &TokenRecord,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: ExposeRequest = json::read(body).await?;
    let mut services = state.store.snapshot().await?.services;
    for (name, service) in &state.plane.applied().state.services {
        services
            .entry(name.clone())
            .or_insert_with(|| service.clone());
    }
    let spec = request
        .validate(&Context {
            acme: state.certificates.settings(),
            templates: &state.config.router_templates,
            services: &services,
            has_mtls_ca: state.config.mtls_client_ca_pem.is_some(),
        })
        .map_err(ApiError::invalid_fields)?;
    if let Some(id) = &spec.dns_credential_id {
        if state.certificates.credentials().get(id).await.is_err() {
            return Err(ApiError::invalid_fields(vec![crate::expose::FieldError {
                field: "dns_credential_id".into(),
                message: format!(
                    "no DNS credential with id \"{id}\"; list them at /api/v1/acme/dns-credentials"
                ),
            }]));
        }
    }
    let template = state
        .config
        .router_templates
        .get(&spec.template)
        .map_or(0, Vec::len);
    let entrypoint = if spec.https { "websecure" } else { "web" };
    let mut steps = vec![
        Step::new(
            "service",
            match &spec.target {
                crate::expose::Target::Host { host, port } => {
                    format!(
                        "create or reuse service {} → {host}:{port}",
                        spec.service_name()
                    )
                }
                crate::expose::Target::Service { name } => format!("use existing service {name}"),
            },
        ),
        Step::new(
            "routers",
            format!(
                "{template} router(s) from template {} on {entrypoint} for {}",
                spec.template,
                spec.hosts.join(", ")
            ),
        ),
    ];
    steps.push(if spec.https {
        Step::new(
            "certificate",
            format!(
                "certificate for {} from {} over {} (a valid one is reused)",
                spec.hosts.join(", "),
                spec.issuer,
                spec.challenge_type
            ),
        )
    } else {
        Step::new("certificate", "none: plain HTTP".into())
    });
    steps.push(Step::new(
        "table_swap",
        "commit service and routers, swap the route table".into(),
    ));
    let plan = plans_api::create(state, token, PlanKind::Expose { spec }, steps).await?;
    Ok(json::ok(StatusCode::ACCEPTED, &plan))
}

/// A router in the monitor.
#[derive(Serialize, ToSchema)]
#[schema(as = MonitoredRouter)]
struct RouterRow<'a> {
    /// Router name.
    name: &'a str,
    /// Path prefix it matches.
    path_prefix: &'a str,
    /// Service it forwards to.
    service: &'a str,
    /// Listener.
    #[schema(value_type = crate::openapi::EntrypointName)]
    entrypoint: &'a str,
    /// Client-certificate policy.
    #[schema(value_type = crate::openapi::MtlsName)]
    mtls: &'a str,
    /// In the live route table.
    live: bool,
}

/// One certificate (or, for routers without one, one host set) and its routers.
#[derive(Serialize, ToSchema)]
#[schema(as = MonitoredRoute)]
struct RouteRow<'a> {
    /// The certificate, when the routers have one.
    certificate_id: Option<&'a str>,
    /// ``Host(`a`) || Host(`b`)``.
    host_rule: String,
    /// The certificate's status.
    #[schema(value_type = Option<crate::openapi::CertificateStatusName>)]
    status: Option<&'static str>,
    /// Issuer that signed the certificate (or was asked).
    issuer: Option<String>,
    /// Unix seconds.
    not_after: Option<i64>,
    /// Whole days until `not_after`.
    days_until_expiry: Option<i64>,
    /// The data plane presents the certificate the record holds now (the
    /// same test as the certificate's own `served`); absent without one.
    certificate_served: Option<bool>,
    /// Any of the routers is live.
    live: bool,
    /// How many routers.
    router_count: usize,
    /// The routers.
    routers: Vec<RouterRow<'a>>,
    /// Where the routes answer.
    public_urls: Vec<String>,
}

/// The routes monitor.
#[derive(Serialize, ToSchema)]
#[schema(as = RoutesMonitor)]
struct Monitor<'a> {
    /// Generation of the applied route table.
    generation: u64,
    /// Routes grouped by certificate.
    routes: Vec<RouteRow<'a>>,
}

/// `GET /api/v1/ingress/routes`: read-only, from the same applied state and
/// the same plan function the route table was built with.
#[utoipa::path(
    get,
    path = "/api/v1/ingress/routes",
    operation_id = "list_routes",
    tag = "ingress",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Routes grouped by certificate", body = Monitor),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `ingress.read`", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn routes(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let records: BTreeMap<String, portcullis_config::model::CertificateRecord> = state
        .certificates
        .list()
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let applied = state.plane.applied_full();
    let planned = portcullis_proxy::plan_routes(&applied.state, &applied.serving);
    let https_port = state.plane.https_port();
    let now = portcullis_acme::unix_now();
    let mut groups: BTreeMap<
        (Option<&str>, Vec<String>),
        Vec<&portcullis_proxy::PlannedRoute<'_>>,
    > = BTreeMap::new();
    for route in &planned {
        let key = match route.router.certificate_id.as_deref() {
            Some(id) => (Some(id), Vec::new()),
            None => (None, route.router.hosts.clone()),
        };
        groups.entry(key).or_default().push(route);
    }
    let mut rows = Vec::new();
    for ((certificate_id, _), routes) in &groups {
        let record = certificate_id.and_then(|id| records.get(id));
        let mut hosts: Vec<&str> = Vec::new();
        for route in routes {
            for host in &route.router.hosts {
                if !hosts.contains(&host.as_str()) {
                    hosts.push(host);
                }
            }
        }
        let mut public_urls = Vec::new();
        for route in routes {
            for host in &route.router.hosts {
                let url = match route.router.entrypoint {
                    Entrypoint::Websecure if https_port == 443 => {
                        format!("https://{host}{}", route.router.path_prefix)
                    }
                    Entrypoint::Websecure => {
                        format!("https://{host}:{https_port}{}", route.router.path_prefix)
                    }
                    Entrypoint::Web => format!("http://{host}{}", route.router.path_prefix),
                };
                if !public_urls.contains(&url) {
                    public_urls.push(url);
                }
            }
        }
        rows.push(RouteRow {
            certificate_id: *certificate_id,
            host_rule: hosts
                .iter()
                .map(|h| format!("Host(`{h}`)"))
                .collect::<Vec<_>>()
                .join(" || "),
            status: record.map(|r| r.status.as_str()),
            issuer: record.map(|r| r.issued_by.clone().unwrap_or_else(|| r.issuer.clone())),
            not_after: record.and_then(|r| r.not_after),
            days_until_expiry: record
                .and_then(|r| r.not_after)
                .map(|t| (t - now).div_euclid(86_400)),
            certificate_served: record.map(|r| state.plane.serves(r)),
            live: routes.iter().any(|r| r.live),
            router_count: routes.len(),
            routers: routes
                .iter()
                .map(|r| RouterRow {
                    name: &r.router.name,
                    path_prefix: &r.router.path_prefix,
                    service: &r.router.service,
                    entrypoint: r.router.entrypoint.as_str(),
                    mtls: r.router.mtls.as_str(),
                    live: r.live,
                })
                .collect(),
            public_urls,
        });
    }
    Ok(json::ok(
        StatusCode::OK,
        &Monitor {
            generation: state.plane.generation(),
            routes: rows,
        },
    ))
}

/// The request body of `POST /api/v1/proxy/compose`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ComposeRequest {
    /// A valid certificate.
    certificate_id: String,
}

/// The table was rebuilt.
#[derive(Serialize, ToSchema)]
struct Composed {
    /// The certificate.
    certificate_id: String,
    /// Generation of the route table now applied.
    generation: u64,
}

/// `POST /api/v1/proxy/compose`: rebuilds and swaps the table for a valid certificate.
#[utoipa::path(
    post,
    path = "/api/v1/proxy/compose",
    operation_id = "compose_table",
    tag = "ingress",
    request_body = ComposeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Certificates reloaded and the table swapped", body = Composed),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `ingress.manage`", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 409, description = "The certificate is not valid", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 422, description = "Malformed body", body = ErrorBody),
        (status = 500, description = "Internal error; see the server log", body = ErrorBody),
    )
)]
pub(crate) async fn compose(
    state: &AdminState,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let request: ComposeRequest = json::read(body).await?;
    let record = state.certificates.get(&request.certificate_id).await?;
    if record.status != CertStatus::Valid {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "certificate {} is {}; only a valid certificate can be composed",
                record.id, record.status
            ),
        ));
    }
    portcullis_proxy::load_managed_certificates(&state.plane, &state.certificates).await;
    Ok(json::ok(
        StatusCode::OK,
        &Composed {
            certificate_id: record.id,
            generation: state.plane.generation(),
        },
    ))
}
