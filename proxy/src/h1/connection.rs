//! One HTTP/1.1 connection to an upstream and the exchange of one request on it.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::Method;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::head::{self, FieldsAs, RequestFraming, ResponseHead};
use super::{BoxError, Error};

/// TCP keep-alive probes on upstream connections, so a dead peer behind a
/// silent network is noticed while the connection sits in a pool.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Room made in the read buffer before each read. Most responses at the
/// edge (head and body) arrive whole in one read of this size.
const READ_SIZE: usize = 8 * 1024;
/// A request-body chunk up to this size is copied beside its chunk header
/// and sent in one write; a larger one is written on its own.
const COALESCE: usize = 16 * 1024;

/// Why a new upstream connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connect did not finish within the service's connect timeout.
    #[error("timed out connecting")]
    Timeout,
    /// The TCP connect failed (refused, unreachable, name not resolved).
    #[error("could not connect: {0}")]
    Io(#[from] std::io::Error),
}

/// An open connection with its buffers, kept across requests.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed; after a response, empty.
    pub(super) read: BytesMut,
    /// The request head being written (its allocation is reused).
    write: Vec<u8>,
    /// Where the response head's fields are, while it is parsed.
    fields: Vec<crate::span::Field>,
}

impl Connection {
    /// Opens a TCP connection to `authority` with `Nagle` off and TCP
    /// keep-alive on. Boxed once here, it moves between pool, request and
    /// response body as a pointer.
    pub(crate) async fn open(
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Box<Self>, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        Ok(Box::new(Self {
            stream,
            read: BytesMut::new(),
            write: Vec::new(),
            fields: Vec::new(),
        }))
    }

    /// True while an idle connection is still open with nothing unread.
    ///
    /// Costs no system call in the common case: the event loop has already
    /// been told when the upstream closed (or sent something unasked), and
    /// the socket is only probed when it reports something to read.
    pub(crate) fn is_open_and_idle(&self) -> bool {
        let mut context = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut context) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(
                    self.stream.try_read(&mut probe),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
                )
            }
        }
    }

    /// Reads more bytes into the read buffer; `Ok(0)` at end of stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        make_room(&mut self.read);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    /// The socket and any bytes already read past the response head, for a
    /// connection that switched protocols.
    pub(crate) fn into_io(self) -> (TcpStream, BytesMut) {
        (self.stream, self.read)
    }

    /// This connection's buffer for request heads, to encode the next one
    /// into before [`Self::send_head`] gives it back (its allocation is
    /// reused from request to request).
    pub(crate) fn take_head_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.write)
    }

    /// Sends one request, its head already encoded (by
    /// [`head::encode_request`] with `framing`), and reads its response head;
    /// the body is left for [`super::UpstreamBody`]. Taking the head encoded
    /// lets the caller drop the client's head it was made from. After a
    /// failure the head is still in [`Self::take_head_buffer`], to be sent
    /// again on another connection.
    ///
    /// A request body is streamed while the response is awaited, so an
    /// upstream that answers early (a 413, a redirect) is heard at once; the
    /// connection is then not reused, as the rest of the body was not sent.
    /// 1xx interim responses other than 101 are read past.
    pub(crate) async fn send_head<B>(
        &mut self,
        head: Vec<u8>,
        (method, fields_as): (&Method, FieldsAs),
        framing: RequestFraming,
        body: Option<B>,
    ) -> Result<ResponseHead, Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        self.write = head;
        let Some(body) = body else {
            let (mut reader, mut writer) = self.stream.split();
            writer.write_all(&self.write).await.map_err(Error::Reset)?;
            let scratch = (&mut self.read, &mut self.fields);
            return read_head(&mut reader, scratch, method, fields_as).await;
        };
        // Boxed: streaming a body is the rarer path, and its state would
        // otherwise make every request's future (moved whole several times
        // on its way to the runtime) a few kilobytes larger.
        Box::pin(self.send_streaming((method, fields_as), body, framing)).await
    }

    async fn send_streaming<B>(
        &mut self,
        (method, fields_as): (&Method, FieldsAs),
        body: B,
        framing: RequestFraming,
    ) -> Result<ResponseHead, Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let (mut reader, mut writer) = self.stream.split();
        let upload = upload(&mut writer, &mut self.write, body, framing);
        let scratch = (&mut self.read, &mut self.fields);
        let response = read_head(&mut reader, scratch, method, fields_as);
        tokio::pin!(upload, response);
        let mut uploaded = None;
        let mut head = loop {
            tokio::select! {
                biased;
                head = &mut response => break head?,
                result = &mut upload, if uploaded.is_none() => match result {
                    // The client went away mid-body: nothing to wait for.
                    Err(error @ Error::RequestBody(_)) => return Err(error),
                    // The upstream may have answered before it stopped
                    // reading: wait for the response all the same.
                    other => uploaded = Some(other.is_ok()),
                },
            }
        };
        if uploaded != Some(true) {
            head.keep_alive = false;
        }
        Ok(head)
    }
}

/// Reads until a final response head is complete.
async fn read_head(
    reader: &mut ReadHalf<'_>,
    (buf, fields): (&mut BytesMut, &mut Vec<crate::span::Field>),
    method: &Method,
    fields_as: FieldsAs,
) -> Result<ResponseHead, Error> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            received = true;
            if let Some(head) = head::parse_response(buf, method, fields, fields_as)? {
                let status = head.parts.status;
                if status.is_informational() && status != http::StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                return Ok(head);
            }
        }
        make_room(buf);
        match reader.read_buf(buf).await {
            Ok(0) if received => return Err(Error::Truncated),
            Ok(0) => return Err(Error::Closed),
            Ok(_) => {}
            Err(error) if received => return Err(Error::Io(error)),
            Err(error) => return Err(Error::Reset(error)),
        }
    }
}

/// Writes the request head, then the body in the given framing.
async fn upload<B>(
    writer: &mut WriteHalf<'_>,
    scratch: &mut Vec<u8>,
    mut body: B,
    framing: RequestFraming,
) -> Result<(), Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    writer.write_all(scratch).await.map_err(Error::Reset)?;
    let chunked = framing == RequestFraming::Chunked;
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Error::RequestBody(error.into()))?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        if !chunked {
            writer.write_all(&data).await.map_err(Error::Io)?;
        } else if data.len() <= COALESCE {
            scratch.clear();
            let _ = write!(scratch, "{:x}\r\n", data.len());
            scratch.extend_from_slice(&data);
            scratch.extend_from_slice(b"\r\n");
            writer.write_all(scratch).await.map_err(Error::Io)?;
        } else {
            scratch.clear();
            let _ = write!(scratch, "{:x}\r\n", data.len());
            writer.write_all(scratch).await.map_err(Error::Io)?;
            writer.write_all(&data).await.map_err(Error::Io)?;
            writer.write_all(b"\r\n").await.map_err(Error::Io)?;
        }
    }
    if chunked {
        scratch.clear();
        scratch.extend_from_slice(b"0\r\n");
        if let Some(trailers) = &trailers {
            head::encode_fields(trailers.iter(), scratch);
        }
        scratch.extend_from_slice(b"\r\n");
        writer.write_all(scratch).await.map_err(Error::Io)?;
    }
    writer.flush().await.map_err(Error::Io)
}

/// How a request with these headers, and a body or not, is framed upstream.
pub(crate) fn request_framing(headers: &HeaderMap, has_body: bool) -> RequestFraming {
    if !has_body {
        return RequestFraming::Empty;
    }
    match content_length(headers) {
        Some(length) => RequestFraming::Length(length),
        None => RequestFraming::Chunked,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    head::parse_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

/// Makes room for a read of `READ_SIZE` in `buf` when little is left.
pub(crate) fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream::{self, StreamExt};
    use http::HeaderValue;
    use http_body::Frame;
    use http_body_util::{Full, StreamBody};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::headers::RequestRewrite;
    use http::request;

    impl Connection {
        /// Encodes the head of `parts` with `rewrite`, then [`Self::send_head`],
        /// as the forwarder does.
        async fn send<B>(
            &mut self,
            parts: &request::Parts,
            rewrite: &RequestRewrite<'_>,
            body: Option<B>,
        ) -> Result<ResponseHead, Error>
        where
            B: Body<Data = Bytes> + Unpin,
            B::Error: Into<BoxError>,
        {
            let framing = request_framing(&parts.headers, body.is_some());
            let mut head = self.take_head_buffer();
            head::encode_request(parts, rewrite, framing, &mut head);
            self.send_head(head, (&parts.method, FieldsAs::Map), framing, body)
                .await
        }
    }

    /// An upstream that reads until `until` has arrived, then answers `reply`
    /// and hands back what it read.
    async fn upstream(
        until: &'static [u8],
        reply: &'static [u8],
    ) -> (Authority, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            while !seen.windows(until.len()).any(|w| w == until) {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early: {seen:?}");
                seen.extend_from_slice(&buf[..n]);
            }
            stream.write_all(reply).await.unwrap();
            // Held open until the client is done with it.
            let _ = stream.read(&mut [0u8; 1]).await;
            seen
        });
        (authority, task)
    }

    /// The rewrite for a plain-HTTP client at 192.0.2.1 asking for up.test.
    fn rewrite(parts: &request::Parts) -> RequestRewrite<'static> {
        static FOR: HeaderValue = HeaderValue::from_static("192.0.2.1");
        static AT: HeaderValue = HeaderValue::from_static("up.test");
        let forwarded = crate::headers::Forwarded {
            forwarded_for: &FOR,
            proto: HeaderValue::from_static("http"),
            host: &AT,
            client_subject: None,
        };
        RequestRewrite::new(
            crate::headers::connection_values(&parts.headers),
            false,
            forwarded,
            &[],
        )
    }

    /// What every request head here carries after the client's fields.
    const ADDED: &str =
        "host: up.test\r\nx-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: up.test\r\n";

    fn parts(method: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = http::Request::builder().method(method).uri("/up");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn a_chunked_upload_carries_its_trailers_and_interim_responses_are_skipped() {
        let (authority, seen) = upstream(
            b"0\r\nx-sum: 10\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        )
        .await;
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "10".parse().unwrap());
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let parts = parts("POST", &[("host", "client.test")]);
        let head = connection
            .send(
                &parts,
                &rewrite(&parts),
                Some(StreamBody::new(stream::iter(frames))),
            )
            .await
            .unwrap();
        assert_eq!(head.parts.status, 200);
        assert!(head.keep_alive);
        assert_eq!(&connection.read[..], b"ok");
        drop(connection);
        let seen = String::from_utf8(seen.await.unwrap()).unwrap();
        assert_eq!(
            seen,
            format!("POST /up HTTP/1.1\r\n{ADDED}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\nx-sum: 10\r\n\r\n")
        );
    }

    #[tokio::test]
    async fn a_body_with_a_length_is_sent_as_is() {
        let (authority, seen) =
            upstream(b"abc", b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").await;
        let mut connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let parts = parts("PUT", &[("content-length", "3")]);
        let head = connection
            .send(
                &parts,
                &rewrite(&parts),
                Some(Full::new(Bytes::from_static(b"abc"))),
            )
            .await
            .unwrap();
        assert_eq!(head.parts.status, 201);
        drop(connection);
        assert_eq!(
            String::from_utf8(seen.await.unwrap()).unwrap(),
            format!("PUT /up HTTP/1.1\r\ncontent-length: 3\r\n{ADDED}\r\nabc")
        );
    }

    #[tokio::test]
    async fn an_early_answer_is_heard_while_the_body_is_still_coming_and_ends_reuse() {
        let (authority, _seen) = upstream(
            b"\r\n\r\n",
            b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\n\r\n",
        )
        .await;
        // A client that sends one chunk and then nothing, for ever.
        let endless = stream::iter(vec![Ok::<_, Infallible>(Frame::data(Bytes::from_static(
            b"x",
        )))])
        .chain(stream::pending());
        let mut connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let head = tokio::time::timeout(
            Duration::from_secs(5),
            connection.send(
                &parts("POST", &[]),
                &rewrite(&parts("POST", &[])),
                Some(StreamBody::new(endless)),
            ),
        )
        .await
        .expect("the early answer arrives without the body ending")
        .unwrap();
        assert_eq!(head.parts.status, 413);
        assert!(
            !head.keep_alive,
            "half a request body was sent: not reusable"
        );
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_stale_and_not_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let mut connection = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        assert!(connection.is_open_and_idle());
        drop(server_side);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!connection.is_open_and_idle());
        let error = connection
            .send(
                &parts("GET", &[]),
                &rewrite(&parts("GET", &[])),
                None::<Full<Bytes>>,
            )
            .await
            .unwrap_err();
        assert!(error.is_stale_connection(), "{error}");
    }
}
