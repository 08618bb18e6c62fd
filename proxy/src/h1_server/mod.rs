//! HTTP/1.1 from clients: the plain requests answered by a loop of our own,
//! everything else by hyper.
//!
//! Nearly every request at the edge is a GET or HEAD without a body on a
//! keep-alive connection. For those, hyper's server side (its dispatcher, its
//! buffered I/O, encoding the answer from a header map) cost about 8 % of a
//! request's user-space instructions here, more than parsing the head did.
//! This loop reads a head with httparse, hands the request to the same
//! handler hyper calls, and writes the answer with its body in one write.
//! Neither head is rebuilt as a `HeaderMap` on the way: the request's fields
//! stay as read ([`crate::plain_request`]) and the upstream's answer comes as
//! lines to write ([`crate::h1::FieldLines`]); together, 17 % fewer
//! instructions per request than through hyper.
//!
//! It takes only what it can answer exactly as hyper would: a head whose
//! request has no body and asks for no upgrade and no `100-continue` (see
//! [`request::parse`]). At the first head that is anything else, including
//! one that does not parse, the connection goes to hyper, with the bytes
//! read so far, for the rest of its life. So bodies, upgrades, `Expect`,
//! HTTP/2's preface, and every 4xx for a broken head stay hyper's, and no
//! head that could frame a body is ever read by two parsers.

mod request;
mod response;
mod rewind;
mod round;

#[cfg(test)]
mod tests;

use std::future::{poll_fn, Future};
use std::io::Write as _;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Either};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use crate::dataplane::DataPlane;
use crate::handler::{handle, ConnectionInfo, ProxyBody};
use request::Head;
use response::{Asked, Framing};
pub(crate) use rewind::Rewind;

/// A head still incomplete past this size goes to hyper, which enforces its
/// own limits (and answers 431).
const MAX_HEAD: usize = 16 * 1024;
/// Body bytes gathered behind the head before they are written; a larger
/// chunk is written on its own instead of copied.
const COALESCE: usize = 16 * 1024;

/// How the loop left the connection.
#[derive(Debug)]
pub(crate) enum Served {
    /// Closed, or to be dropped: nothing more to do.
    Done,
    /// A head this loop does not take: hyper serves the rest of the
    /// connection, starting with these bytes.
    ToHyper(Bytes),
}

/// Serves requests on `io` until the connection ends or a request needs
/// hyper.
pub(crate) async fn serve<I>(
    io: &mut I,
    plane: &Arc<DataPlane>,
    info: &Arc<ConnectionInfo>,
) -> Served
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let _kept = crate::shedding::Kept::enter();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut answered = false;
    loop {
        let request = loop {
            if !buf.is_empty() {
                match request::parse(&mut buf) {
                    Head::Plain(request) => break request,
                    Head::Other => return Served::ToHyper(buf.freeze()),
                    Head::Partial if buf.len() > MAX_HEAD => return Served::ToHyper(buf.freeze()),
                    Head::Partial => {}
                }
            }
            // Between requests a draining worker closes the connection; the
            // first request of a connection accepted before the listener
            // closed is still answered.
            let idle = answered && buf.is_empty();
            match read_more(io, &mut buf, idle).await {
                Read::Some => {}
                Read::End | Read::Drained => return Served::Done,
            }
        };
        answered = true;
        let in_progress = round::Answering::begin();
        let asked = Asked {
            head_only: request.method() == Method::HEAD,
            http10: request.version() == Version::HTTP_10,
            keep_alive: !request.body().closes(),
        };
        let answering = handle(Arc::clone(plane), Arc::clone(info), request);
        let Some(Ok(answer)) = answer_unless_gone(io, &mut buf, answering).await else {
            // The client left before its answer: the upstream exchange is
            // dropped with it.
            return Served::Done;
        };
        let (parts, body) = answer.into_parts();
        out.clear();
        let asked = Asked {
            keep_alive: asked.keep_alive && !crate::idle_watch::draining() && !moves_client(plane),
            ..asked
        };
        let hint = (!body.is_end_stream()).then(|| body.size_hint());
        let lines = match body.get_ref() {
            Either::Left(upstream) => upstream.lines(),
            Either::Right(_) => None,
        };
        let Ok(written) = response::encode_head(&parts, lines, hint.as_ref(), asked, &mut out)
        else {
            tracing::warn!(status = %parts.status, "answer with an invalid head; connection closed");
            return Served::Done;
        };
        if write_answer(io, &mut out, body, written.framing, &in_progress)
            .await
            .is_err()
        {
            return Served::Done;
        }
        if !written.keep_alive {
            let _ = io.shutdown().await;
            return Served::Done;
        }
    }
}

/// Whether this answer asks its client to reconnect, for a saturated
/// worker (see [`crate::shedding`]).
fn moves_client(plane: &DataPlane) -> bool {
    let moves = crate::shedding::take_one();
    if moves {
        plane.metrics().count_moved();
    }
    moves
}

/// What a read brought.
enum Read {
    Some,
    /// End of stream, or the connection failed.
    End,
    /// The worker is draining and the connection is between requests.
    Drained,
}

/// Reads more of the next head; `idle` when nothing of it has arrived yet
/// after an answer, so that a draining worker may close the connection.
async fn read_more<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut, idle: bool) -> Read {
    crate::h1::make_room(buf);
    poll_fn(|cx| {
        // Checked at each wake-up: the drain wakes every watched connection.
        if idle && crate::idle_watch::draining() {
            return Poll::Ready(Read::Drained);
        }
        match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut *io), cx, buf) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Read::End),
            Poll::Ready(Ok(_)) => Poll::Ready(Read::Some),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Waits for the answer, watching the connection meanwhile: a client that
/// closes it (or whose connection fails) before its answer is ready is gone,
/// and `None` is returned, as hyper does without half-close support. Bytes
/// that arrive instead (a pipelined request) are kept for later, and the
/// connection is not read further until the answer is written.
async fn answer_unless_gone<I, F>(io: &mut I, buf: &mut BytesMut, answering: F) -> Option<F::Output>
where
    I: AsyncRead + Unpin,
    F: Future,
{
    let mut answering = pin!(answering);
    poll_fn(|cx| {
        if let Poll::Ready(answer) = answering.as_mut().poll(cx) {
            return Poll::Ready(Some(answer));
        }
        if buf.is_empty() {
            crate::h1::make_room(buf);
            match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut *io), cx, buf) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) | Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// Why an answer was cut short; the connection is then closed.
#[derive(Debug)]
struct Cut;

/// Writes the head in `out` and the body behind it, then flushes; the last
/// write leaves together with the worker's other answers of this turn (see
/// [`round`]).
///
/// A body that ends is dropped before its last bytes are written: that marks
/// an ending connection's last answer (see [`crate::close_notify`]), so that
/// its `close_notify` leaves in the same write.
async fn write_answer<I: AsyncWrite + Unpin>(
    io: &mut I,
    out: &mut Vec<u8>,
    mut body: ProxyBody,
    framing: Framing,
    answering: &round::Answering,
) -> Result<(), Cut> {
    let chunked = framing == Framing::Chunked;
    let mut left = match framing {
        Framing::Length(length) => Some(length),
        Framing::Chunked | Framing::UntilClose => None,
    };
    while left != Some(0) {
        let Some(frame) = body.frame().await else {
            break;
        };
        let Ok(data) = frame.map_err(|_| Cut)?.into_data() else {
            // Trailers: not passed on over HTTP/1.1 (none were asked for).
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if let Some(left) = &mut left {
            // More than the answer declared: the rest would be read as the
            // next answer's head.
            *left = left.checked_sub(data.len() as u64).ok_or(Cut)?;
        }
        if chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            write(io, out).await?;
            io.write_all(&data).await.map_err(|_| Cut)?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= COALESCE {
            write(io, out).await?;
        }
    }
    if left.is_some_and(|left| left > 0) {
        // The body ended short of its length: the client must not take
        // what it got as the whole answer.
        return Err(Cut);
    }
    drop(body);
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    answering.leave_together().await;
    write(io, out).await?;
    io.flush().await.map_err(|_| Cut)
}

async fn write<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> Result<(), Cut> {
    io.write_all(out).await.map_err(|_| Cut)?;
    out.clear();
    Ok(())
}
