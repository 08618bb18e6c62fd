//! A connection's last response and its TLS `close_notify` in one write.
//!
//! When a client asks for its connection to be closed after the answer
//! (`Connection: close`, or HTTP/1.0 without `keep-alive`), hyper writes the
//! response, flushes it, and then shuts the TLS stream down, which sends the
//! `close_notify` alert as a write and a packet of its own. The client has
//! usually read the response and closed by then, so that last packet also
//! draws a reset. For a connection that carries one request, that alert was
//! one write in three. Here the response handler marks the answer that ends the
//! connection once its body is complete; [`EndingTls`] then leaves that
//! answer's last bytes in rustls, queues `close_notify` behind them at the
//! flush that follows, and sends both together, held by the kernel until the
//! shutdown's FIN can travel in the same segment.
//!
//! Nothing is held in user space across a flush: a flush always writes. The mark only
//! decides whether `close_notify` joins that write, and it is set only for an
//! answer after which hyper is certain to close (see [`closes_connection`]).

use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::late_tickets::LateTickets;

/// Set when the answer that ends an HTTP/1 connection over TLS is complete.
#[derive(Debug, Default)]
pub(crate) struct Ending(AtomicBool);

impl Ending {
    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        // The handler and the connection run in one task: no ordering to keep.
        self.0.load(Ordering::Relaxed)
    }
}

/// Kept with the response body of the connection's last answer; marks the
/// connection as ending when the body is done (or dropped unfinished, when
/// hyper closes the connection anyway).
#[derive(Debug)]
pub(crate) struct LastAnswer(Arc<Ending>);

impl LastAnswer {
    pub(crate) fn new(ending: Arc<Ending>) -> Self {
        Self(ending)
    }
}

impl Drop for LastAnswer {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Whether hyper will close the connection after answering `request`: the
/// same reading of `Connection` that hyper's HTTP/1 server makes (RFC 9112
/// §9.3 and §9.6). A field value that is not visible ASCII counts as no
/// token, as hyper counts it; where the two could differ, this says no.
pub(crate) fn closes_connection<B>(request: &Request<B>) -> bool {
    closes_after(
        request.version(),
        crate::headers::connection_values(request.headers()),
    )
}

/// [`closes_connection`] for a request's version and `Connection` values.
pub(crate) fn closes_after<'a>(
    version: Version,
    connection: impl Iterator<Item = &'a [u8]>,
) -> bool {
    let mut keep_alive = false;
    for token in crate::headers::tokens(connection) {
        if token.eq_ignore_ascii_case("close") {
            return true;
        }
        keep_alive |= token.eq_ignore_ascii_case("keep-alive");
    }
    version == Version::HTTP_10 && !keep_alive
}

/// A client's TLS stream that sends `close_notify` with the last answer.
#[derive(Debug)]
pub(crate) struct EndingTls {
    /// Boxed: a TLS stream is over a kilobyte, and the futures serving a
    /// connection move it from one to the next.
    tls: Box<TlsStream<LateTickets>>,
    /// `None` for HTTP/2, where the server ends connections with GOAWAY.
    ending: Option<Arc<Ending>>,
}

impl EndingTls {
    pub(crate) fn new(tls: TlsStream<LateTickets>, ending: Option<Arc<Ending>>) -> Self {
        Self {
            tls: Box::new(tls),
            ending,
        }
    }

    fn is_ending(&self) -> bool {
        self.ending.as_deref().is_some_and(Ending::is_set)
    }
}

impl AsyncRead for EndingTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for EndingTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// The last answer's bytes are encrypted into rustls's buffer and left
    /// there for the flush; everything else goes out as `tokio_rustls`
    /// sends it.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_ending() {
            let (_, session) = self.tls.get_mut();
            // Zero when rustls's buffer is full: then it is written out below.
            let buffered = session.writer().write_vectored(bufs)?;
            if buffered > 0 {
                return Poll::Ready(Ok(buffered));
            }
        }
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_ending() {
            let (io, session) = self.tls.get_mut();
            // Sent once however often this runs: rustls keeps track.
            session.send_close_notify();
            io.last_answer();
        }
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
