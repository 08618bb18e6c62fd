//! Idle HTTP/1.1 connections to one upstream address, kept for reuse.
//!
//! One pool per worker thread and address (see [`crate::worker`]): only its
//! own worker takes from or returns to a pool (a lock-free queue, never
//! contended), so a connection's task always runs on the thread whose
//! requests use it. Connections are opened on demand with
//! `hyper::client::conn::http1`; a connection goes back to its pool when the
//! response body that used it is dropped (see [`Lease`]), and is taken again
//! only when hyper says it is ready for the next request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use http::uri::Authority;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long an idle pooled upstream connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream address and worker.
pub(crate) const MAX_IDLE: usize = 256;
/// TCP keep-alive probes on upstream connections, so a dead peer behind a
/// silent network is noticed while the connection sits in the pool.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The request side of one upstream connection.
pub(crate) type Sender = http1::SendRequest<Incoming>;

/// Why a new upstream connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connect did not finish within the service's connect timeout.
    #[error("timed out connecting")]
    Timeout,
    /// The TCP connect failed (refused, unreachable, name not resolved).
    #[error("could not connect: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/1.1 connection could not be set up.
    #[error("could not start HTTP/1.1: {0}")]
    Http(#[from] hyper::Error),
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// Idle connections to one address, for one worker.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// First in, first out: under steady load every idle connection is
    /// used in turn; in a lull they all age out together. Allocates nothing
    /// until a connection is first returned.
    idle: SegQueue<Idle>,
}

impl Pool {
    /// An idle connection that is ready for a request, if there is one.
    /// Closed and expired connections found on the way are dropped; one
    /// still finishing its last response goes back to the end of the queue.
    pub(crate) fn take(&self) -> Option<Sender> {
        let now = Instant::now();
        for _ in 0..self.idle.len() {
            let entry = self.idle.pop()?;
            if entry.sender.is_closed() || now.duration_since(entry.since) > IDLE_TIMEOUT {
                continue;
            }
            if entry.sender.is_ready() {
                return Some(entry.sender);
            }
            self.idle.push(entry);
        }
        None
    }

    /// Returns a connection after its response; a closed one, or one over
    /// the limit, is dropped (which closes it).
    pub(crate) fn put(&self, sender: Sender) {
        if !sender.is_closed() && self.idle.len() < MAX_IDLE {
            self.idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// How many connections are idle here (for tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.len()
    }
}

/// A connection lent to one request; it returns to its pool when the
/// response body that came over it is dropped, that is once the response
/// has been passed on (or abandoned, in which case hyper closes it and the
/// pool drops it).
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    sender: Option<Sender>,
}

impl Lease {
    pub(crate) fn new(pool: Arc<Pool>, sender: Sender) -> Self {
        Self {
            pool,
            sender: Some(sender),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.put(sender);
        }
    }
}

/// An upstream's response body, holding the lease on its connection.
#[derive(Debug)]
pub(crate) struct PooledBody {
    // Dropped first: an unfinished body tells hyper to close the connection
    // before the lease offers it back to the pool.
    inner: Incoming,
    _lease: Option<Lease>,
}

impl PooledBody {
    /// `lease` is `None` for a connection that must not be reused (an upgrade).
    pub(crate) fn new(inner: Incoming, lease: Option<Lease>) -> Self {
        Self {
            inner,
            _lease: lease,
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Opens a new HTTP/1.1 connection to `authority` and starts its task on
/// the current worker.
pub(crate) async fn connect(
    authority: &Authority,
    timeout: Duration,
) -> Result<Sender, ConnectError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
        .await
        .map_err(|_| ConnectError::Timeout)??;
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    let (mut sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    sender.ready().await?;
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_returned_connection_is_reused_and_a_closed_one_is_dropped() {
        let (addr, backend) = backend().await;
        let authority: Authority = addr.to_string().parse().unwrap();
        let pool = Pool::default();
        assert!(pool.take().is_none());
        let sender = connect(&authority, Duration::from_secs(1)).await.unwrap();
        pool.put(sender);
        assert_eq!(pool.idle(), 1);
        assert!(pool.take().is_some(), "a ready idle connection is reused");
        assert_eq!(pool.idle(), 0);

        backend.abort();

        // A server that hangs up right after accepting.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let hang_up = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        });
        let sender = connect(&authority, Duration::from_secs(1)).await.unwrap();
        hang_up.await.unwrap();
        pool.put(sender);
        let closed = async {
            while pool.take().is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("a closed connection is not handed out");
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_refused_connect_is_an_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let error = connect(&authority, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, ConnectError::Io(_)), "{error}");
    }
}
