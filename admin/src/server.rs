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
use crate::{certificates, health, Error};

/// What the admin handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The data plane, for readiness.
    pub plane: Arc<DataPlane>,
    /// The store: tokens and records.
    pub store: Arc<dyn Store>,
    /// Certificates.
    pub certificates: Manager,
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

    /// Serves until `shutdown` completes.
    pub async fn serve(self, state: AdminState, shutdown: impl Future<Output = ()> + Send) {
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
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["healthz"]) => Ok(health::healthz()),
        (&Method::GET | &Method::HEAD, ["readyz"]) => Ok(health::readyz(state)),
        (_, ["api", "v1", "acme", "certificates", rest @ ..]) => {
            let token = authenticate(state, &request).await?;
            let manager = &state.certificates;
            match (&method, rest) {
                (&Method::GET, []) => {
                    require(&token, ACME_READ)?;
                    certificates::list(manager).await
                }
                (&Method::POST, []) => {
                    require(&token, ACME_MANAGE)?;
                    certificates::create(manager, request.into_body(), "api").await
                }
                (&Method::GET, [id]) => {
                    require(&token, ACME_READ)?;
                    certificates::show(manager, id).await
                }
                (&Method::POST, [id, "renew"]) => {
                    require(&token, ACME_MANAGE)?;
                    certificates::renew(manager, id).await
                }
                (&Method::POST, [id, "revoke"]) => {
                    require(&token, ACME_MANAGE)?;
                    certificates::revoke(manager, id).await
                }
                _ => Err(method_or_path(&method)),
            }
        }
        _ => Err(ApiError::not_found("route")),
    }
}

fn method_or_path(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no {method} route at this path"),
    )
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
