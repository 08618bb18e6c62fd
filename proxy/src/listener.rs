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

use crate::close_notify::EndingTls;
use crate::dataplane::DataPlane;
use crate::h1_server::{self, Rewind, Served};
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
    /// own single-threaded runtime and its own two sockets on the two
    /// addresses (SO_REUSEPORT). A connection lives on the worker that
    /// accepted it, with the upstream connections it uses (see
    /// [`crate::worker`]). The kernel spreads new connections evenly over the
    /// workers by their addresses, so long-lived ones (keep-alive, HTTP/2)
    /// end up evenly split; from one shared socket, whichever worker was
    /// awake took them, and one worker could end up with four times the
    /// other's share of a benchmark's 64 connections.
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
        // One pair of sockets per worker, all on the same two addresses
        // (SO_REUSEPORT): the kernel hands each new connection to one of
        // them. On one shared socket every idle worker was woken by each new
        // connection and all but one went back to sleep empty-handed (with
        // two workers, 1.9 `accept` calls and 2.8 context switches per
        // one-request connection, against 1.6 and 2.2 now).
        let mut sockets = vec![(web, websecure)];
        for _ in 1..shared.plane.workers() {
            let (web, websecure) = &sockets[0];
            sockets.push((twin(web)?, twin(websecure)?));
        }
        for (index, sockets) in sockets.into_iter().enumerate() {
            let (done, finished_rx) = oneshot::channel::<()>();
            let failed = failed.clone();
            let (closed, closed_rx) = oneshot::channel();
            let worker = Worker {
                index,
                shared: Arc::clone(&shared),
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
        drop(failed);
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

/// Another listening socket on the address of `listener`, for one more
/// worker.
fn twin(listener: &std::net::TcpListener) -> Result<std::net::TcpListener, Error> {
    listener.local_addr().and_then(listen).map_err(socket_error)
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
        let web = TcpListener::from_std(web).map_err(socket_error)?;
        let websecure = TcpListener::from_std(websecure).map_err(socket_error)?;
        let graceful = GracefulShutdown::new();
        // Ends with the runtime, when the worker returns.
        tokio::spawn(crate::pool::sweep_idle());
        tokio::spawn(crate::idle_watch::sweep(
            self.shared.plane.header_read_timeout(),
        ));
        let accept = async {
            tokio::join!(
                accept_loop(&web, Entrypoint::Web, &self.shared, &graceful),
                accept_loop(&websecure, Entrypoint::Websecure, &self.shared, &graceful),
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
    let error = |source| Error::Bind {
        entrypoint,
        address,
        source,
    };
    // Each worker gets its own socket on this address (see `Listeners::serve`),
    // so the first one is opened to them with SO_REUSEPORT. That would also
    // let a second Portcullis of the same user bind here and silently share
    // the traffic; a socket without it is tried first, which fails if anyone
    // holds the port, as before.
    if address.port() != 0 {
        drop(std::net::TcpListener::bind(address).map_err(error)?);
    }
    let listener = listen(address).map_err(error)?;
    TcpListener::from_std(listener).map_err(error)
}

/// A listening socket on `address` that more sockets may join
/// (SO_REUSEPORT), with TCP_NODELAY, which Linux copies to every accepted
/// socket: responses leave in small writes that must not wait for an ACK,
/// and this saves a `setsockopt` per connection (see `accept_loop`).
fn listen(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Connections the kernel may queue per listening socket before `accept`.
const LISTEN_BACKLOG: i32 = 1024;

async fn accept_loop(
    listener: &TcpListener,
    entrypoint: Entrypoint,
    shared: &Arc<Shared>,
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
        // Start on the connection before taking another: its first bytes
        // (a ClientHello) are usually waiting, and are answered before the
        // next accept rather than after a whole burst of them.
        tokio::task::yield_now().await;
    }
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
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                return;
            }
        };
        stream.get_mut().0.handshake_done();
        let (_, session) = stream.get_ref();
        if session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // RFC 8737 §3: the validation is the handshake; no HTTP follows.
            return;
        }
        let http1 = session.alpn_protocol() != Some(b"h2");
        let ending = http1.then(Arc::default);
        let info = ConnectionInfo {
            entrypoint: Entrypoint::Websecure,
            peer: self.peer,
            forwarded_for: crate::headers::forwarded_for(self.peer.ip()),
            sni: session.server_name().map(Box::from),
            client_chain: session.peer_certificates().map(<[_]>::to_vec),
            client_verdicts: Default::default(),
            // HTTP/2 has no request heads to wait for (hyper never timed
            // them either).
            idle: http1.then(Watch::start),
            ending: ending.clone(),
        };
        let stream = EndingTls::new(stream, ending);
        self.serve_http(stream, info).await;
    }

    /// Serves HTTP on an accepted (and, on `websecure`, decrypted) stream.
    ///
    /// HTTP/1 connections start with our own loop for plain requests
    /// ([`crate::h1_server`]) and go to hyper at the first request it does
    /// not take; HTTP/2 connections (by ALPN) go to hyper at once.
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
            // Boxed: hyper's connection state is large, and most
            // connections never need it.
            Box::pin(self.serve_hyper(Rewind::new(io, early), info)).await
        };
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Both entrypoints on loopback, on ports the system picks.
    async fn loopback() -> Listeners {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Listeners::bind(any, any).await.unwrap()
    }

    /// Nagle's algorithm would hold a response's last small write until the
    /// client ACKs the previous one (40 ms with delayed ACKs).
    #[tokio::test]
    async fn accepted_connections_send_small_writes_at_once() {
        let listeners = loopback().await;
        for listener in [&listeners.web, &listeners.websecure] {
            let address = listener.local_addr().unwrap();
            let _client = TcpStream::connect(address).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            assert!(accepted.nodelay().unwrap(), "Nagle is on for {address}");
        }
    }

    /// The workers' sockets share the port with SO_REUSEPORT, which would
    /// also let a second server join it; the start must fail instead.
    #[tokio::test]
    async fn a_port_shared_by_another_servers_sockets_fails_the_bind() {
        let held = listen(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let address = held.local_addr().unwrap();
        let error = Listeners::bind(address, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Bind { entrypoint: "web", address: at, .. } if at == address),
            "{error:?}"
        );
    }

    /// Each worker listens on a socket of its own: every connection must be
    /// answered whichever socket the kernel gives it to, and once the server
    /// stops, none of them may still take connections.
    #[tokio::test]
    async fn every_workers_socket_is_served_and_all_close_at_shutdown() {
        let listeners = loopback().await;
        let web = listeners.web_addr();
        let plane = DataPlane::new(crate::DataPlaneOptions {
            access_log: false,
            https_port: 443,
            fallback: None,
            unknown_host_status: http::StatusCode::NOT_FOUND,
            workers: 4,
            header_read_timeout: Duration::from_secs(30),
        })
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(listeners.serve(
            plane,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        // 64 connections over 4 sockets: each socket gets some of them
        // unless the kernel's hash is most unusual ((3/4)^64 per socket).
        for _ in 0..64 {
            let answer = tokio::time::timeout(Duration::from_secs(5), async {
                let mut client = TcpStream::connect(web).await.unwrap();
                client
                    .write_all(b"GET / HTTP/1.1\r\nhost: nowhere.test\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                client.read_to_end(&mut answer).await.unwrap();
                answer
            })
            .await
            .expect("a connection was not served");
            assert!(answer.starts_with(b"HTTP/1.1 404 "), "{answer:?}");
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        for _ in 0..16 {
            assert!(
                TcpStream::connect(web).await.is_err(),
                "a socket still takes connections after shutdown"
            );
        }
    }
}
