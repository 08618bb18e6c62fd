//! The admin listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_proxy::DataPlane;
use tokio::net::TcpListener;

use crate::{health, Error};

/// What the admin handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The data plane, for readiness.
    pub plane: Arc<DataPlane>,
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
                        async move { Ok::<_, Infallible>(route(&state, request)) }
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

fn route(state: &AdminState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => health::healthz(),
        (&Method::GET | &Method::HEAD, "/readyz") => health::readyz(state),
        _ => health::plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}
