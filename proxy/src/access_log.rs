//! One access-log line per request, written when the response body ends.
//!
//! Logging at the end (not when the head is sent) is what lets the line carry
//! the byte count and the full duration of a streamed response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::close_notify::LastAnswer;
use crate::idle_watch::InFlight;

/// Tracing target of access-log lines, for filtering (`portcullis::access=off`).
pub const TARGET: &str = "portcullis::access";

/// What the line says about a request, gathered as it is handled.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    /// When the request head arrived.
    pub start: Instant,
    /// Client address.
    pub client: std::net::SocketAddr,
    /// Entrypoint name.
    pub entrypoint: &'static str,
    /// Request method.
    pub method: http::Method,
    /// Host as the client sent it.
    pub host: String,
    /// Request path.
    pub path: String,
    /// The router that matched, if any.
    pub router: Option<Arc<str>>,
    /// The service that answered, if any.
    pub service: Option<Arc<str>>,
    /// Response status.
    pub status: u16,
}

/// A response body that counts its bytes and logs the request when dropped,
/// and until then keeps its connection from counting as idle.
#[derive(Debug)]
pub(crate) struct Logged<B> {
    inner: B,
    record: Option<Box<AccessRecord>>,
    bytes: u64,
    /// Dropped with the body (after the log line): see [`crate::idle_watch`].
    _in_flight: Option<InFlight>,
    /// Dropped with the body: see [`crate::close_notify`].
    _last: Option<LastAnswer>,
}

impl<B> Logged<B> {
    /// Wraps `inner`; `record` is `None` when access logging is off,
    /// `in_flight` when the connection is not watched for idleness, and
    /// `last` unless this is the last answer of an HTTP/1 connection over
    /// TLS.
    pub(crate) fn new(
        inner: B,
        record: Option<Box<AccessRecord>>,
        in_flight: Option<InFlight>,
        last: Option<LastAnswer>,
    ) -> Self {
        Self {
            inner,
            record,
            bytes: 0,
            _in_flight: in_flight,
            _last: last,
        }
    }

    /// The body inside.
    pub(crate) fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for Logged<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        let Some(record) = self.record.take() else {
            return;
        };
        tracing::info!(
            target: TARGET,
            client = %record.client,
            entrypoint = record.entrypoint,
            method = %record.method,
            host = %record.host,
            path = %record.path,
            router = record.router.as_deref().unwrap_or("-"),
            service = record.service.as_deref().unwrap_or("-"),
            status = record.status,
            bytes = self.bytes,
            duration_ms = record.start.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}
