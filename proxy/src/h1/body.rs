//! A response body read from an upstream connection as the client takes it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use super::connection::Connection;
use super::head::{FieldLines, Framing, MAX_HEAD};
use super::Error;
use crate::pool::Pool;

/// Longest chunk-size line accepted (with extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes are left of a `Content-Length` body.
    Length(u64),
    /// A chunk-size line comes next.
    ChunkSize,
    /// This many bytes are left of the current chunk.
    ChunkData(u64),
    /// The CRLF after a chunk's data comes next.
    ChunkEnd,
    /// The trailer section after the last chunk comes next.
    Trailers,
    /// Everything until the upstream closes.
    UntilClose,
    /// The body has ended.
    Done,
}

/// What one decoding step found in the buffer.
enum Step {
    Frame(Frame<Bytes>),
    /// The last frame (if any): the body is complete.
    End(Option<Frame<Bytes>>),
    /// More bytes must be read first.
    More,
}

/// An upstream's response body. Data is handed on as it arrives, sharing
/// the read buffer; the moment the last byte is read the connection goes
/// back to its pool (when the upstream allows reuse). A body dropped before
/// its end closes the connection with it.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    connection: Option<Box<Connection>>,
    state: State,
    keep_alive: bool,
    pool: Option<Arc<Pool>>,
    /// The response head's fields, when they were asked for as lines.
    /// Boxed: this body is moved whole several times on its way to the
    /// client, on HTTP/2 too, where it never has lines.
    lines: Option<Box<FieldLines>>,
}

impl UpstreamBody {
    /// The body that follows a response head on `connection`. `pool` is
    /// where the connection returns afterwards (`None`: it is closed).
    pub(crate) fn new(
        connection: Box<Connection>,
        framing: Framing,
        keep_alive: bool,
        pool: Option<Arc<Pool>>,
    ) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            connection: Some(connection),
            state,
            keep_alive,
            pool,
            lines: None,
        };
        if state == State::Done {
            body.finish();
        }
        body
    }

    /// A body with nothing in it and no connection (a 101's).
    pub(crate) fn empty() -> Self {
        Self {
            connection: None,
            state: State::Done,
            keep_alive: false,
            pool: None,
            lines: None,
        }
    }

    /// Carries the response head's fields as lines (see [`FieldLines`]):
    /// they belong to the response, but a `Response` has no place for them
    /// other than its extensions, which would allocate for each one.
    pub(crate) fn with_lines(mut self, lines: Option<Box<FieldLines>>) -> Self {
        self.lines = lines;
        self
    }

    /// The response head's fields, when they were asked for as lines.
    pub(crate) fn lines(&self) -> Option<&FieldLines> {
        self.lines.as_deref()
    }

    fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(connection), Some(pool)) = (self.connection.take(), self.pool.take()) {
            // Bytes beyond the body mean the upstream is out of step.
            if self.keep_alive && connection.read.is_empty() {
                pool.put(connection);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            if this.state == State::Done {
                this.finish();
                return Poll::Ready(None);
            }
            let step = match decode(&mut this.state, &mut connection.read) {
                Ok(step) => step,
                Err(error) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(error)));
                }
            };
            match step {
                Step::Frame(frame) => return Poll::Ready(Some(Ok(frame))),
                Step::End(frame) => {
                    this.finish();
                    return Poll::Ready(frame.map(Ok));
                }
                Step::More => {}
            }
            match ready!(connection.poll_fill(cx)) {
                Ok(0) if this.state == State::UntilClose => {
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(Error::Truncated)));
                }
                Ok(_) => {}
                Err(error) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(Error::Io(error))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

/// Takes what the state allows from the front of `buf`.
fn decode(state: &mut State, buf: &mut BytesMut) -> Result<Step, Error> {
    loop {
        match *state {
            State::Done => return Ok(Step::End(None)),
            State::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let data = take(buf, left);
                let left = left - data.len() as u64;
                if left == 0 {
                    *state = State::Done;
                    return Ok(Step::End(Some(Frame::data(data))));
                }
                *state = State::Length(left);
                return Ok(Step::Frame(Frame::data(data)));
            }
            State::UntilClose => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                return Ok(Step::Frame(Frame::data(buf.split().freeze())));
            }
            State::ChunkSize => {
                let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(Error::Chunk);
                    }
                    return Ok(Step::More);
                };
                let size = chunk_size(&buf[..end]).ok_or(Error::Chunk)?;
                buf.advance(end + 1);
                *state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
            }
            State::ChunkData(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let data = take(buf, left);
                let left = left - data.len() as u64;
                *state = if left == 0 {
                    State::ChunkEnd
                } else {
                    State::ChunkData(left)
                };
                return Ok(Step::Frame(Frame::data(data)));
            }
            State::ChunkEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(Error::Chunk);
                }
                buf.advance(2);
                *state = State::ChunkSize;
            }
            State::Trailers => {
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                    *state = State::Done;
                    return Ok(Step::End(None));
                }
                let mut fields = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(buf, &mut fields) {
                    Ok(httparse::Status::Complete((length, fields))) => {
                        let trailers = trailer_map(fields);
                        buf.advance(length);
                        *state = State::Done;
                        return Ok(Step::End(
                            (!trailers.is_empty()).then(|| Frame::trailers(trailers)),
                        ));
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                        return Err(Error::HeadTooLarge)
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::More),
                    Err(error) => return Err(Error::Malformed(error)),
                }
            }
        }
    }
}

fn take(buf: &mut BytesMut, left: u64) -> Bytes {
    let count = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
    buf.split_to(count).freeze()
}

/// The hex size at the start of a chunk line (`1a;ext=v\r`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .map_or(line, |end| &line[..end]);
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = char::from(b).to_digit(16)?;
        Some(size * 16 + u64::from(digit))
    })
}

fn trailer_map(fields: &[httparse::Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for field in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` one piece at a time and collects what the decoder gives.
    fn decode_all(
        mut state: State,
        pieces: &[&[u8]],
    ) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), Error> {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        let mut pieces = pieces.iter();
        loop {
            let frame = match decode(&mut state, &mut buf)? {
                Step::More => match pieces.next() {
                    Some(piece) => {
                        buf.extend_from_slice(piece);
                        continue;
                    }
                    None => return Err(Error::Truncated),
                },
                Step::Frame(frame) => Some(frame),
                Step::End(frame) => {
                    if let Some(frame) = frame {
                        match frame.into_data() {
                            Ok(bytes) => data.extend_from_slice(&bytes),
                            Err(frame) => trailers = frame.into_trailers().ok(),
                        }
                    }
                    let mut rest = buf;
                    for piece in pieces {
                        rest.extend_from_slice(piece);
                    }
                    return Ok((data, trailers, rest));
                }
            };
            if let Some(bytes) = frame.and_then(|f| f.into_data().ok()) {
                data.extend_from_slice(&bytes);
            }
        }
    }

    #[test]
    fn a_length_body_ends_at_its_length_and_leaves_the_rest() {
        let (data, _, rest) = decode_all(State::Length(5), &[b"he", b"llo", b"HTTP/1.1"]).unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(&rest[..], b"HTTP/1.1");
    }

    #[test]
    fn chunks_split_anywhere_decode_the_same() {
        let wire: &[u8] =
            b"5;name=v\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 9\r\n\r\n";
        for cut in 1..wire.len() {
            let (head, tail) = wire.split_at(cut);
            let (data, trailers, rest) = decode_all(State::ChunkSize, &[head, tail]).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "cut at {cut}");
            assert_eq!(trailers.unwrap()["x-sum"], "9");
            assert!(rest.is_empty());
        }
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        let (data, _, _) = decode_all(State::ChunkSize, &bytewise).unwrap();
        assert_eq!(data.len(), 31);
    }

    #[test]
    fn bad_chunks_are_errors_and_a_short_body_is_truncated() {
        for wire in [
            &b"zz\r\nhi\r\n0\r\n\r\n"[..],
            b"2\r\nhiXX0\r\n\r\n",
            b"ffffffffffffffff1\r\n",
        ] {
            assert!(
                matches!(decode_all(State::ChunkSize, &[wire]), Err(Error::Chunk)),
                "{wire:?}"
            );
        }
        assert!(matches!(
            decode_all(State::Length(10), &[b"short"]),
            Err(Error::Truncated)
        ));
    }
}
