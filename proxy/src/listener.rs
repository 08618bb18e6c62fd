//! The `web` and `websecure` listeners: accept, TLS, HTTP, graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use portcullis_config::model::Entrypoint;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::accept_gate::{Gate, GatedListener};
use crate::close_notify::EndingTls;
use crate::dataplane::DataPlane;
use crate::h1_server::{self, Rewind, Served};
use crate::h2_server;
use crate::handler::{handle, ConnectionInfo};
use crate::idle_watch::Watch;
use crate::late_tickets::LateTickets;
use crate::sni_resolver::ACME_TLS_ALPN;
use crate::Error;

/// A client that has not finished its TLS handshake by then is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    ///
    /// Connections are served by [`DataPlane::workers`] threads, each with its
    /// own single-threaded runtime, accepting from the same two sockets. A
    /// connection lives on the worker that accepted it, with the upstream
    /// connections it uses (see [`crate::worker`]). New connections go to as
    /// few workers as keep up with them (see [`crate::accept_gate`]).
    pub async fn serve(
        self,
        plane: Arc<DataPlane>,
        shutdown: impl Future<Output = ()> + Send,
        drain: Duration,
    ) -> Result<(), Error> {
        let shared = Arc::new(Shared {
            tls: TlsAcceptor::from(plane.server_config()?),
            builder: http_builder(),
            plane,
        });
        let web = self.web.into_std().map_err(socket_error)?;
        let websecure = self.websecure.into_std().map_err(socket_error)?;
        let (stop, stopped) = watch::channel(false);
        let mut finished = Vec::new();
        let mut listening = Vec::new();
        let (failed, mut failures) = mpsc::unbounded_channel();
        let gate = Gate::new(shared.plane.workers());
        for index in 0..shared.plane.workers() {
            let sockets = (
                web.try_clone().map_err(socket_error)?,
                websecure.try_clone().map_err(socket_error)?,
            );
            let (done, finished_rx) = oneshot::channel::<()>();
            let failed = failed.clone();
            let (closed, closed_rx) = oneshot::channel();
            let worker = Worker {
                index,
                shared: Arc::clone(&shared),
                gate: Arc::clone(&gate),
                stopped: stopped.clone(),
                closed,
                drain,
            };
            std::thread::Builder::new()
                .name(format!("portcullis-worker-{index}"))
                .spawn(move || {
                    if let Err(error) = worker.run(sockets) {
                        let _ = failed.send(error);
                    }
                    drop(done);
                })
                .map_err(|source| Error::Serve {
                    what: "worker thread",
                    source,
                })?;
            finished.push(finished_rx);
            listening.push(closed_rx);
        }
        // The workers hold their own copies of the sockets.
        drop((web, websecure, failed));
        let mut first_error = None;
        tokio::select! {
            () = shutdown => {}
            // A worker that failed ends the whole server.
            Some(error) = failures.recv() => first_error = Some(error),
        }
        let _ = stop.send(true);
        // Said once every worker has closed its copy of the sockets, so that
        // from this line on new connections are refused.
        for worker in listening {
            let _ = worker.await;
        }
        tracing::info!(drain_timeout = ?drain, "stopped accepting; draining in-flight requests");
        for worker in finished {
            let _ = worker.await;
        }
        if let Ok(error) = failures.try_recv() {
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn socket_error(source: std::io::Error) -> Error {
    Error::Serve {
        what: "worker listener",
        source,
    }
}

/// What every worker shares: the data plane, TLS and HTTP settings.
struct Shared {
    plane: Arc<DataPlane>,
    tls: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Enforced by `idle_watch` instead: hyper's arms a timer per request.
        .header_read_timeout(None::<Duration>);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// One data-plane thread: its runtime, accept loops and connections.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    gate: Arc<Gate>,
    stopped: watch::Receiver<bool>,
    /// Told when this worker's sockets are closed.
    closed: oneshot::Sender<()>,
    drain: Duration,
}

impl Worker {
    fn run(
        self,
        (web, websecure): (std::net::TcpListener, std::net::TcpListener),
    ) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Serve {
                what: "worker runtime",
                source,
            })?;
        crate::worker::enter(self.index);
        runtime.block_on(self.serve(web, websecure))
    }

    async fn serve(
        mut self,
        web: std::net::TcpListener,
        websecure: std::net::TcpListener,
    ) -> Result<(), Error> {
        let (open, accepting) = watch::channel(self.gate.accepting(self.index));
        let mut web = GatedListener::new(web, accepting.clone());
        let mut websecure = GatedListener::new(websecure, accepting);
        let graceful = GracefulShutdown::new();
        // Ends with the runtime, when the worker returns.
        tokio::spawn(crate::pool::sweep_idle());
        tokio::spawn(crate::idle_watch::sweep(
            self.shared.plane.header_read_timeout(),
        ));
        let accept = async {
            tokio::join!(
                accept_loop(
                    &mut web,
                    Entrypoint::Web,
                    (&self.shared, &self.gate),
                    &graceful
                ),
                accept_loop(
                    &mut websecure,
                    Entrypoint::Websecure,
                    (&self.shared, &self.gate),
                    &graceful
                ),
                self.gate.steer(self.index, &open),
            )
        };
        tokio::select! {
            _ = accept => {}
            _ = self.stopped.wait_for(|stop| *stop) => {}
        }
        drop((web, websecure));
        let _ = self.closed.send(());
        crate::idle_watch::drain();
        if tokio::time::timeout(self.drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = self.index,
                "drain timeout reached; closing remaining connections"
            );
        }
        Ok(())
    }
}

async fn bind(entrypoint: &'static str, address: SocketAddr) -> Result<TcpListener, Error> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind {
            entrypoint,
            address,
            source,
        })?;
    // Responses leave in small writes that must not wait for an ACK. Linux
    // copies TCP_NODELAY to every accepted socket, which saves a
    // `setsockopt` per connection (see `accept_loop`).
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(&listener)
        .set_nodelay(true)
        .map_err(|source| Error::Serve {
            what: "listener (TCP_NODELAY)",
            source,
        })?;
    Ok(listener)
}

async fn accept_loop(
    listener: &mut GatedListener,
    entrypoint: Entrypoint,
    (shared, gate): (&Arc<Shared>, &Gate),
    graceful: &GracefulShutdown,
) {
    while let Some(accepted) = listener.accept().await {
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(entrypoint = entrypoint.as_str(), %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.plane.metrics().count_accepted();
        gate.note_accepted();
        serve_accepted(stream, peer, entrypoint, shared, graceful).await;
    }
}

/// Starts serving an accepted connection on its own task.
async fn serve_accepted(
    stream: TcpStream,
    peer: SocketAddr,
    entrypoint: Entrypoint,
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
) {
    #[cfg(not(target_os = "linux"))]
    let _ = stream.set_nodelay(true);
    let connection = Connection {
        shared: Arc::clone(shared),
        watcher: graceful.watcher(),
        peer,
    };
    match entrypoint {
        Entrypoint::Websecure => tokio::spawn(connection.serve_tls(stream)),
        Entrypoint::Web => tokio::spawn(connection.serve_plain(stream)),
    };
    // Start on the connection before taking another, so that the first
    // connections of a burst do not wait for the accepts of the rest.
    tokio::task::yield_now().await;
}

/// One accepted client connection.
struct Connection {
    shared: Arc<Shared>,
    watcher: Watcher,
    peer: SocketAddr,
}

impl Connection {
    async fn serve_plain(self, stream: TcpStream) {
        let info = ConnectionInfo {
            entrypoint: Entrypoint::Web,
            peer: self.peer,
            forwarded_for: crate::headers::forwarded_for(self.peer.ip()),
            sni: None,
            client_chain: None,
            client_verdicts: Default::default(),
            idle: Some(Watch::start()),
            ending: None,
        };
        self.serve_http(stream, info).await;
    }

    async fn serve_tls(self, stream: TcpStream) {
        let Some((stream, info)) = self.handshake(stream).await else {
            return;
        };
        if info.ending.is_some() {
            self.serve_http(stream, info).await;
        } else {
            self.serve_h2(stream, info).await;
        }
    }

    /// The TLS handshake, and what the HTTP side needs from it; `None` when
    /// no HTTP follows.
    ///
    /// A function of its own so that the handshake's locals, the unboxed
    /// stream among them (over a kilobyte), live only in its future and not
    /// in the connection's for as long as it serves.
    async fn handshake(&self, stream: TcpStream) -> Option<(EndingTls, ConnectionInfo)> {
        let accept = self.shared.tls.accept(LateTickets::new(stream));
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept.into_fallible()).await;
        let metrics = self.shared.plane.metrics();
        let counter = match &handshake {
            Ok(Ok(_)) => &metrics.handshakes,
            _ => &metrics.handshake_failures,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err((error, mut io))) => {
                io.release();
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                return None;
            }
        };
        stream.get_mut().0.handshake_done();
        let (_, session) = stream.get_ref();
        if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // RFC 8737 §3: the validation is the handshake; no HTTP follows.
            return None;
        }
        let http1 = session.alpn_protocol() != Some(b"h2");
        // Only HTTP/1 connections have a last answer; HTTP/2 ones are
        // served apart (see `serve_tls`).
        let ending = http1.then(Arc::default);
        let info = ConnectionInfo {
            entrypoint: Entrypoint::Websecure,
            peer: self.peer,
            forwarded_for: crate::headers::forwarded_for(self.peer.ip()),
            sni: session.server_name().map(Box::from),
            client_chain: session.peer_certificates().map(<[_]>::to_vec),
            client_verdicts: Default::default(),
            idle: Some(Watch::start()),
            ending: ending.clone(),
        };
        Some((EndingTls::new(stream, ending), info))
    }

    /// Serves HTTP on an accepted (and, on `websecure`, decrypted) stream.
    ///
    /// HTTP/1 connections start with our own loop for plain requests
    /// ([`crate::h1_server`]) and go to hyper at the first request it does
    /// not take, or to [`crate::h2_server`] when that is HTTP/2's preface
    /// (cleartext HTTP/2 with prior knowledge). HTTP/2 by ALPN never comes
    /// here (see `serve_h2`).
    async fn serve_http<I>(self, io: I, info: ConnectionInfo)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let idle = info.idle.clone();
        let info = Arc::new(info);
        let served = async move {
            let mut io = io;
            // Only HTTP/1 connections are watched for idling.
            let early = if info.idle.is_some() {
                match h1_server::serve(&mut io, &self.shared.plane, &info).await {
                    Served::Done => return Ok(()),
                    Served::ToHyper(early) => early,
                }
            } else {
                Bytes::new()
            };
            if h2_server::starts_preface(&early) {
                // Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3).
                let Some(watch) = info.idle.clone() else {
                    return Ok(());
                };
                let plane = Arc::clone(&self.shared.plane);
                let io = Rewind::new(io, early);
                return Box::pin(h2_server::serve(io, plane, info, watch))
                    .await
                    .map_err(BoxError::from);
            }
            // Boxed: hyper's connection state is large, and most
            // connections never need it.
            Box::pin(self.serve_hyper(Rewind::new(io, early), info)).await
        };
        let served = std::pin::pin!(served);
        let ended = match &idle {
            Some(watch) => crate::idle_watch::run(watch, served).await,
            None => Some(served.await),
        };
        match ended {
            Some(Err(error)) => {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            Some(Ok(())) => {}
            None => {
                tracing::debug!(%peer, "no whole request head within header_read_timeout; closed");
            }
        }
    }

    /// Serves an HTTP/2 connection with our own loop ([`crate::h2_server`]).
    /// `self` is held until it ends, so that a draining worker waits for it.
    async fn serve_h2<I>(self, io: I, info: ConnectionInfo)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Some(watch) = info.idle.clone() else {
            return;
        };
        let plane = Arc::clone(&self.shared.plane);
        let peer = self.peer;
        if let Err(error) = h2_server::serve(io, plane, Arc::new(info), watch).await {
            tracing::debug!(%peer, %error, "HTTP/2 connection ended with an error");
        }
        drop(self);
    }

    async fn serve_hyper<I>(self, io: I, info: Arc<ConnectionInfo>) -> Result<(), BoxError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let plane = Arc::clone(&self.shared.plane);
        let service =
            service_fn(move |request| handle(Arc::clone(&plane), Arc::clone(&info), request));
        let connection = self
            .shared
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        self.watcher.watch(connection.into_owned()).await
    }
}

/// Why hyper ended a connection.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle's algorithm would hold a response's last small write until the
    /// client ACKs the previous one (40 ms with delayed ACKs).
    #[tokio::test]
    async fn accepted_connections_send_small_writes_at_once() {
        let listeners = Listeners::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();
        for listener in [&listeners.web, &listeners.websecure] {
            let address = listener.local_addr().unwrap();
            let _client = TcpStream::connect(address).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            assert!(accepted.nodelay().unwrap(), "Nagle is on for {address}");
        }
    }

    /// New connections at a rate one worker keeps up with all go to that
    /// worker; the other sleeps instead of being woken for each.
    #[tokio::test]
    async fn at_low_load_the_first_worker_takes_every_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let plane = DataPlane::new(crate::DataPlaneOptions {
            access_log: false,
            https_port: 443,
            fallback: None,
            unknown_host_status: http::StatusCode::NOT_FOUND,
            workers: 2,
            header_read_timeout: Duration::from_secs(30),
        })
        .unwrap();
        let listeners = Listeners::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .unwrap();
        let web = listeners.web_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(listeners.serve(
            Arc::clone(&plane),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        for _ in 0..20 {
            let mut client = TcpStream::connect(web).await.unwrap();
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: nowhere.test\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            assert!(answer.starts_with(b"HTTP/1.1 404"), "{answer:?}");
            // A rate far from keeping a worker busy, even in a debug build.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut metrics = String::new();
        plane.render_metrics(&mut metrics);
        assert!(
            metrics.contains("portcullis_connections_accepted_total{worker=\"0\"} 20\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("portcullis_connections_accepted_total{worker=\"1\"} 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("portcullis_clients_moved_total{worker=\"0\"} 0\n"),
            "no client moved off a worker that keeps up: {metrics}"
        );
        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
    }
}
