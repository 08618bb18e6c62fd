//! The `web` and `websecure` listeners: accept, TLS, HTTP, graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use portcullis_config::model::Entrypoint;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::dataplane::DataPlane;
use crate::handler::{handle, ConnectionInfo};
use crate::sni_resolver::ACME_TLS_ALPN;
use crate::Error;

/// A client that has not finished its TLS handshake by then is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent a whole request head by then is dropped.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Both entrypoints, bound and not yet serving.
#[derive(Debug)]
pub struct Listeners {
    web: TcpListener,
    websecure: TcpListener,
}

impl Listeners {
    /// Binds both addresses; fails before serving anything if either is taken.
    pub async fn bind(web: SocketAddr, websecure: SocketAddr) -> Result<Self, Error> {
        Ok(Self {
            web: bind("web", web).await?,
            websecure: bind("websecure", websecure).await?,
        })
    }

    /// The bound address of `web` (useful with port 0).
    pub fn web_addr(&self) -> SocketAddr {
        self.web
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The bound address of `websecure`.
    pub fn websecure_addr(&self) -> SocketAddr {
        self.websecure
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes, then stops accepting and gives
    /// in-flight requests up to `drain` to finish.
    pub async fn serve(
        self,
        plane: Arc<DataPlane>,
        shutdown: impl Future<Output = ()> + Send,
        drain: Duration,
    ) -> Result<(), Error> {
        let tls = TlsAcceptor::from(plane.server_config()?);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let graceful = GracefulShutdown::new();
        let accept = async {
            tokio::join!(
                accept_loop(
                    &self.web,
                    Entrypoint::Web,
                    &plane,
                    &builder,
                    None,
                    &graceful
                ),
                accept_loop(
                    &self.websecure,
                    Entrypoint::Websecure,
                    &plane,
                    &builder,
                    Some(&tls),
                    &graceful
                ),
            )
        };
        tokio::select! {
            _ = accept => {}
            () = shutdown => {}
        }
        drop(self);
        tracing::info!(drain_timeout = ?drain, "stopped accepting; draining in-flight requests");
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout reached; closing remaining connections");
        }
        Ok(())
    }
}

async fn bind(entrypoint: &'static str, address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind {
            entrypoint,
            address,
            source,
        })
}

async fn accept_loop(
    listener: &TcpListener,
    entrypoint: Entrypoint,
    plane: &Arc<DataPlane>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    tls: Option<&TlsAcceptor>,
    graceful: &GracefulShutdown,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(entrypoint = entrypoint.as_str(), %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            plane: Arc::clone(plane),
            builder: Arc::clone(builder),
            watcher: graceful.watcher(),
            peer,
        };
        match tls {
            Some(tls) => tokio::spawn(connection.serve_tls(tls.clone(), stream)),
            None => tokio::spawn(connection.serve_plain(stream)),
        };
    }
}

/// One accepted client connection.
struct Connection {
    plane: Arc<DataPlane>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
    peer: SocketAddr,
}

impl Connection {
    async fn serve_plain(self, stream: TcpStream) {
        let info = ConnectionInfo {
            entrypoint: Entrypoint::Web,
            peer: self.peer,
            sni: None,
            client_chain: None,
        };
        self.serve_http(TokioIo::new(stream), info).await;
    }

    async fn serve_tls(self, tls: TlsAcceptor, stream: TcpStream) {
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
        let counter = match &handshake {
            Ok(Ok(_)) => &self.plane.metrics().handshakes,
            _ => &self.plane.metrics().handshake_failures,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = stream.get_ref();
        if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // RFC 8737 §3: the validation is the handshake; no HTTP follows.
            return;
        }
        let info = ConnectionInfo {
            entrypoint: Entrypoint::Websecure,
            peer: self.peer,
            sni: session.server_name().map(Box::from),
            client_chain: session.peer_certificates().map(<[_]>::to_vec),
        };
        self.serve_http(TokioIo::new(stream), info).await;
    }

    async fn serve_http<I>(self, io: TokioIo<I>, info: ConnectionInfo)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let info = Arc::new(info);
        let plane = self.plane;
        let service =
            service_fn(move |request| handle(Arc::clone(&plane), Arc::clone(&info), request));
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        if let Err(error) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
        }
    }
}
