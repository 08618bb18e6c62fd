//! A request's body as the handler sees it: the DATA frames of its stream,
//! handed over by the connection as they arrive.
//!
//! The connection and the forwarder run in different tasks (the forwarder
//! may stream the body from its own), so the frames travel through a
//! channel. Flow control follows consumption, not arrival: the stream's
//! window is only opened again (WINDOW_UPDATE) for bytes the forwarder has
//! taken, so a slow upstream slows the client instead of filling memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::forward::RequestBody;

/// What the connection hands a request body.
#[derive(Debug)]
pub(crate) enum Part {
    Data(Bytes),
    Trailers(HeaderMap),
    /// END_STREAM: the body is whole.
    End,
    /// The client reset the stream, or broke the body's framing.
    Reset,
}

/// Bytes of a stream's body the forwarder has taken: the connection gives
/// the client as much window back.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) stream: u32,
    pub(crate) bytes: u32,
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the client reset the stream before the request body ended")]
    Reset,
    #[error("the connection closed before the request body ended")]
    Closed,
}

/// The body of a request that has one.
#[derive(Debug)]
pub(crate) struct Received {
    stream: u32,
    parts: mpsc::UnboundedReceiver<Part>,
    taken: mpsc::UnboundedSender<Taken>,
    /// The request's Content-Length, for the size hint.
    length: Option<u64>,
    ended: bool,
}

impl Received {
    pub(crate) fn new(
        stream: u32,
        parts: mpsc::UnboundedReceiver<Part>,
        taken: mpsc::UnboundedSender<Taken>,
        length: Option<u64>,
    ) -> Self {
        Self {
            stream,
            parts,
            taken,
            length,
            ended: false,
        }
    }
}

impl Body for Received {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let part = std::task::ready!(self.parts.poll_recv(cx));
        Poll::Ready(match part {
            Some(Part::Data(data)) => {
                let bytes = u32::try_from(data.len()).unwrap_or(u32::MAX);
                // The connection may be gone; then nobody needs the window.
                let _ = self.taken.send(Taken {
                    stream: self.stream,
                    bytes,
                });
                Some(Ok(Frame::data(data)))
            }
            Some(Part::Trailers(trailers)) => {
                self.ended = true;
                Some(Ok(Frame::trailers(trailers)))
            }
            Some(Part::End) => {
                self.ended = true;
                None
            }
            Some(Part::Reset) => {
                self.ended = true;
                Some(Err(BodyError::Reset))
            }
            None => {
                self.ended = true;
                Some(Err(BodyError::Closed))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.length.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl RequestBody for Received {
    type Upload = Self;
    const LINES: bool = true;

    fn into_upload(self) -> Self {
        self
    }
}

/// The body of a request whose HEADERS ended its stream: the exchange of
/// such a request keeps no room for a body (see [`RequestBody::Upload`]).
#[derive(Debug)]
pub(crate) struct NoBody;

impl Body for NoBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

impl RequestBody for NoBody {
    type Upload = http_body_util::Empty<Bytes>;
    const LINES: bool = true;

    fn into_upload(self) -> Self::Upload {
        http_body_util::Empty::new()
    }
}
