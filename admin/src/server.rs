//! The admin listener and its routes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_acme::Manager;
use portcullis_config::Store;
use portcullis_proxy::DataPlane;
use tokio::net::TcpListener;

use crate::api_error::ApiError;
use crate::tokens::{self, TokenRecord, ACME_MANAGE, ACME_READ};
use crate::{
    audit, certificates, dns_credentials, health, ingress, openapi, plans_api, tokens_api, Error,
};

/// Settings of the control plane.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Whether plans wait for approval.
    pub require_approval: bool,
    /// Router templates by name.
    pub router_templates:
        std::collections::BTreeMap<String, portcullis_config::model::template::RouterTemplate>,
    /// PEM of the CA that template mTLS routers verify clients against.
    pub mtls_client_ca_pem: Option<String>,
    /// Tenant custom domains, when configured.
    pub tenants: Option<Arc<portcullis_config::settings::tenants::TenantSettings>>,
    /// The bound `websecure` address, for activation probes.
    pub websecure_addr: Option<SocketAddr>,
}

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The data plane, for readiness and the routes monitor.
    pub plane: Arc<DataPlane>,
    /// The store: tokens, plans, audit.
    pub store: Arc<dyn Store>,
    /// Certificates.
    pub certificates: Manager,
    /// Settings.
    pub config: Arc<AdminConfig>,
    /// Tenant workflows running in this process.
    pub(crate) tenant_tasks: crate::tenants::workflow::Running,
    /// Tenant workflow metrics.
    pub(crate) tenant_metrics: crate::tenants::metrics::TenantMetrics,
}

impl AdminState {
    /// The state the admin handlers share.
    pub fn new(
        plane: Arc<DataPlane>,
        store: Arc<dyn Store>,
        certificates: Manager,
        config: AdminConfig,
    ) -> Self {
        Self {
            plane,
            store,
            certificates,
            config: Arc::new(config),
            tenant_tasks: crate::tenants::workflow::Running::default(),
            tenant_metrics: crate::tenants::metrics::TenantMetrics::default(),
        }
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminState(..)")
    }
}

/// The admin API, bound and not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    /// Binds the admin address.
    pub async fn bind(address: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| Error::Bind { address, source })?;
        Ok(Self { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes. Plans a previous process left
    /// running are settled first.
    pub async fn serve(self, state: AdminState, shutdown: impl Future<Output = ()> + Send) {
        crate::executor::recover(&state).await;
        let _drift = state.config.tenants.clone().map(|tenants| {
            let state = state.clone();
            tokio::spawn(async move {
                crate::tenants::workflow::resume(&state, &tenants).await;
                crate::tenants::drift::spawn(state, tenants).await
            })
        });
        let state = Arc::new(state);
        let accept = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(route(&state, request).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        tokio::select! {
            () = accept => {}
            () = shutdown => {}
        }
    }
}

async fn route(state: &AdminState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    state: &AdminState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (get, post, delete) = (
        method == Method::GET || method == Method::HEAD,
        method == Method::POST,
        method == Method::DELETE,
    );
    match segments.as_slice() {
        ["healthz"] if get => return Ok(health::healthz()),
        ["readyz"] if get => return Ok(health::readyz(state)),
        ["metrics"] if get => return Ok(crate::metrics::render(state).await),
        // The document describes the API; it holds no secret, so no token.
        ["api", "v1", "openapi.json"] if get => return Ok(openapi::openapi_json()),
        ["api", "v1", "openapi.json"] => return Err(method_or_path(&method, &segments)),
        ["api", "v1", ..] => {}
        _ => return Err(method_or_path(&method, &segments)),
    }
    let token = authenticate(state, &request).await?;
    match &segments[2..] {
        ["acme", "certificates"] if get => {
            require(&token, ACME_READ)?;
            certificates::list(state).await
        }
        ["acme", "certificates"] if post => {
            require(&token, ACME_MANAGE)?;
            certificates::create(state, &token, request.into_body()).await
        }
        ["acme", "certificates", id] if get => {
            require(&token, ACME_READ)?;
            certificates::show(state, id).await
        }
        ["acme", "certificates", id, "renew"] if post => {
            require(&token, ACME_MANAGE)?;
            audit::record(
                state.store.as_ref(),
                &token.name,
                "certificate.renew",
                id,
                "ok",
                None,
            )
            .await;
            certificates::renew(state, id).await
        }
        ["acme", "certificates", id, "revoke"] if post => {
            require(&token, ACME_MANAGE)?;
            certificates::revoke(state, &token, id).await
        }
        ["acme", "dns-credentials"] if get => {
            require(&token, ACME_READ)?;
            dns_credentials::list(state).await
        }
        ["acme", "dns-credentials"] if post => {
            require(&token, ACME_MANAGE)?;
            dns_credentials::create(state, &token, request.into_body()).await
        }
        ["acme", "dns-credentials", id] if get => {
            require(&token, ACME_READ)?;
            dns_credentials::show(state, id).await
        }
        ["acme", "dns-credentials", id] if delete => {
            require(&token, ACME_MANAGE)?;
            dns_credentials::remove(state, &token, id).await
        }
        ["acme", "dns-credentials", id, "validate"] if post => {
            require(&token, ACME_MANAGE)?;
            dns_credentials::validate(state, id).await
        }
        ["tenants", tenant, "portal-domain"] if get => {
            require(&token, tokens::DOMAINS_MANAGE)?;
            crate::tenants::api::show(state, &token, tenant).await
        }
        ["tenants", tenant, "portal-domain"] if method == Method::PUT => {
            require(&token, tokens::DOMAINS_MANAGE)?;
            crate::tenants::api::put(state, &token, tenant, request.into_body()).await
        }
        ["tenants", tenant, "portal-domain"] if delete => {
            require(&token, tokens::DOMAINS_MANAGE)?;
            crate::tenants::api::delete(state, &token, tenant).await
        }
        ["tenants", tenant, "portal-domain", "refresh"] if post => {
            require(&token, tokens::DOMAINS_MANAGE)?;
            crate::tenants::api::refresh(state, &token, tenant).await
        }
        ["ingress", "expose"] if post => {
            require(&token, tokens::INGRESS_MANAGE)?;
            ingress::expose(state, &token, request.into_body()).await
        }
        ["ingress", "routes"] if get => {
            require(&token, tokens::INGRESS_READ)?;
            ingress::routes(state).await
        }
        ["proxy", "compose"] if post => {
            require(&token, tokens::INGRESS_MANAGE)?;
            ingress::compose(state, request.into_body()).await
        }
        ["plans"] if get => {
            require_any(
                &token,
                &[tokens::INGRESS_READ, ACME_READ, tokens::PLANS_APPROVE],
            )?;
            plans_api::list(state).await
        }
        ["plans", id] if get => {
            require_any(
                &token,
                &[tokens::INGRESS_READ, ACME_READ, tokens::PLANS_APPROVE],
            )?;
            plans_api::show(state, id).await
        }
        ["plans", id, "approve"] if post => {
            require(&token, tokens::PLANS_APPROVE)?;
            plans_api::approve(state, &token, id).await
        }
        ["plans", id, "reject"] if post => {
            require(&token, tokens::PLANS_APPROVE)?;
            plans_api::reject(state, &token, id).await
        }
        ["tokens"] if get => tokens_api::list(state, &token).await,
        ["tokens"] if post => tokens_api::create(state, &token, request.into_body()).await,
        ["tokens", name] if delete => tokens_api::revoke(state, &token, name).await,
        ["audit"] if get => {
            require(&token, tokens::AUDIT_READ)?;
            tokens_api::audit_log(state, query.as_deref()).await
        }
        _ => Err(method_or_path(&method, &segments)),
    }
}

/// The methods a known path serves (the `Allow` of its 405), or `None` for
/// a path no route serves. Mirrors the arms of [`dispatch`]; GET routes
/// answer HEAD too.
pub(crate) fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    const GET_POST: &str = "GET, HEAD, POST";
    let allow = match segments {
        ["healthz"] | ["readyz"] | ["metrics"] => GET,
        ["api", "v1", rest @ ..] => match rest {
            ["openapi.json"] => GET,
            ["acme", "certificates"] => GET_POST,
            ["acme", "certificates", _] => GET,
            ["acme", "certificates", _, "renew" | "revoke"] => POST,
            ["acme", "dns-credentials"] => GET_POST,
            ["acme", "dns-credentials", _] => "GET, HEAD, DELETE",
            ["acme", "dns-credentials", _, "validate"] => POST,
            ["ingress", "expose"] | ["proxy", "compose"] => POST,
            ["ingress", "routes"] | ["plans"] | ["plans", _] | ["audit"] => GET,
            ["plans", _, "approve" | "reject"] => POST,
            ["tokens"] => GET_POST,
            ["tokens", _] => "DELETE",
            ["tenants", _, "portal-domain"] => "GET, HEAD, PUT, DELETE",
            ["tenants", _, "portal-domain", "refresh"] => POST,
            _ => return None,
        },
        _ => return None,
    };
    Some(allow)
}

fn require_any(token: &TokenRecord, permissions: &[&str]) -> Result<(), ApiError> {
    if permissions.iter().any(|p| token.allows(p)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&permissions.join(" or ")))
    }
}

/// 405 naming the methods when the path is served with other methods, else 404.
fn method_or_path(method: &Method, segments: &[&str]) -> ApiError {
    match (allowed_methods(segments), segments) {
        (Some(allow), _) => ApiError::method_not_allowed(method, allow),
        (None, ["api", "v1", ..]) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {method} route at this path"),
        ),
        (None, _) => ApiError::not_found("route"),
    }
}

async fn authenticate(
    state: &AdminState,
    request: &Request<Incoming>,
) -> Result<TokenRecord, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    tokens::lookup(state.store.as_ref(), presented)
        .await?
        .ok_or_else(ApiError::unauthorized)
}

fn require(token: &TokenRecord, permission: &str) -> Result<(), ApiError> {
    if token.allows(permission) {
        Ok(())
    } else {
        Err(ApiError::forbidden(permission))
    }
}
