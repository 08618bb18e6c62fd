//! Sending a routed request to its upstream and streaming the answer back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::uri::Authority;
use http::{request, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::h1::{self, ConnectError, Connection, FieldsAs, RequestFraming, UpstreamBody};
use crate::headers::{self, Forwarded, RequestRewrite};
use crate::idle_watch::Watch;
use crate::plain_request::PlainFields;
use crate::route_table::Route;

/// Why a request could not be forwarded; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// The upstream refused the connection.
    #[error("upstream {upstream}: {source}")]
    Connect {
        /// The address tried.
        upstream: String,
        /// Why connecting failed.
        #[source]
        source: ConnectError,
    },
    /// The upstream reset the connection or sent something that is not HTTP.
    #[error("upstream {upstream}: {source}")]
    Upstream {
        /// The address tried.
        upstream: String,
        /// What went wrong in the exchange.
        #[source]
        source: h1::Error,
    },
    /// Connecting or waiting for the response head took too long.
    #[error("upstream {upstream}: timed out {phase}")]
    Timeout {
        /// The address tried.
        upstream: String,
        /// `connecting` or `waiting for the response`.
        phase: &'static str,
    },
    /// The service has no usable upstream address.
    #[error("service has no usable upstream address")]
    NoUpstream,
}

impl ForwardError {
    fn timed_out(authority: &Authority, phase: &'static str) -> Self {
        Self::Timeout {
            upstream: authority.to_string(),
            phase,
        }
    }

    /// RFC 9110 §15.6.3 / §15.6.5: 502 for a bad upstream, 504 for a slow one.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect { .. } | Self::Upstream { .. } | Self::NoUpstream => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// A request body the handler forwards: hyper's, or the empty body of a
/// plain request that carries its fields (see [`PlainFields`]).
pub(crate) trait RequestBody: Upload {
    /// What goes upstream as the body. Its own type, so that the exchange
    /// of a request that never has one (a plain request) does not keep room
    /// for it across every await: that future is moved whole on each request,
    /// and past 1 KiB its allocation leaves the allocator's fast path.
    type Upload: Upload;

    /// Whether the answer's upstream fields are wanted as lines
    /// ([`h1::FieldLines`]) rather than a `HeaderMap`: our own servers write
    /// them out as they come, and only hyper needs a map to encode.
    const LINES: bool = false;

    /// The request's header fields, when they are kept as read instead of
    /// in the request's `HeaderMap`.
    fn plain_fields(&self) -> Option<&PlainFields> {
        None
    }

    /// The body to send upstream (called only when there is one).
    fn into_upload(self) -> Self::Upload;
}

/// A body that can be streamed to an upstream.
pub(crate) trait Upload:
    http_body::Body<Data = bytes::Bytes, Error: Into<h1::BoxError> + Send> + Send + Unpin + 'static
{
}

impl<B> Upload for B where
    B: http_body::Body<Data = bytes::Bytes, Error: Into<h1::BoxError> + Send>
        + Send
        + Unpin
        + 'static
{
}

impl RequestBody for hyper::body::Incoming {
    type Upload = Self;

    fn into_upload(self) -> Self {
        self
    }
}

impl RequestBody for PlainFields {
    type Upload = http_body_util::Empty<bytes::Bytes>;
    const LINES: bool = true;

    fn plain_fields(&self) -> Option<&PlainFields> {
        Some(self)
    }

    fn into_upload(self) -> Self::Upload {
        http_body_util::Empty::new()
    }
}

#[cfg(test)]
impl RequestBody for http_body_util::Empty<bytes::Bytes> {
    type Upload = Self;

    fn into_upload(self) -> Self {
        self
    }
}

/// The request context forwarding needs besides the request.
#[derive(Debug)]
pub(crate) struct Context {
    /// The client's IP address, as an `X-Forwarded-For` value.
    pub forwarded_for: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
    /// The client's Host, as sent.
    pub host: HeaderValue,
    /// Verified client-certificate subject to pass on.
    pub client_subject: Option<HeaderValue>,
    /// The client connection's watch, when the connection carries one
    /// request at a time: its sweep can then keep a long response deadline
    /// instead of a timer (see [`Watch::respond_within`]).
    pub watch: Option<Arc<Watch>>,
}

/// Forwards `request` to the next upstream of `route`.
///
/// Bodies stream both ways. An HTTP/1.1 `Upgrade` that the upstream accepts
/// (101) becomes a byte tunnel between client and upstream.
///
/// Not an `async fn`: one would hold its arguments twice (as passed, and
/// moved into its body), and this future is moved whole on every request.
/// The upstream's request head is encoded before the future is built, and
/// the future keeps only that.
///
/// `started` is when the caller began timing the exchange: the pool's idle
/// check and the response deadline count from it instead of each reading
/// the clock again.
pub(crate) fn forward<B>(
    route: Arc<Route>,
    mut request: Request<B>,
    mut context: Context,
    started: Instant,
) -> impl Future<Output = Result<Response<UpstreamBody>, ForwardError>> + Send
where
    B: RequestBody,
{
    let upgrade = request.version() == Version::HTTP_11 && headers::is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let has_body = !body.is_end_stream();
    // Done before the future is returned: the client's head (its URI, its
    // fields, the Host value in the context) shares hyper's read buffer, and
    // hyper reads ahead on the connection as soon as it has the future. With
    // the head encoded and dropped by then, hyper reads the next request into
    // the same buffer instead of allocating another.
    let fields_as = if B::LINES {
        FieldsAs::Lines
    } else {
        FieldsAs::Map
    };
    let watch = context.watch.take();
    let prepared = prepare(
        (&route, started),
        parts,
        (body.plain_fields(), fields_as),
        context,
        upgrade,
        has_body,
    );
    let body = has_body.then(|| body.into_upload());
    async move {
        let (index, pooled, request) = prepared.ok_or(ForwardError::NoUpstream)?;
        let upstreams = &route.upstreams;
        let authority = upstreams.authority(index).ok_or(ForwardError::NoUpstream)?;
        let exchange = std::pin::pin!(exchange(
            pooled,
            authority,
            upstreams.connect_timeout(),
            request,
            body,
        ));
        let timeout = upstreams.response_timeout();
        let exchanged = match watch.and_then(|watch| watch.respond_within(started, timeout)) {
            Some(deadline) => deadline.bound(exchange).await,
            None => {
                let deadline = tokio::time::Instant::from_std(started) + timeout;
                tokio::time::timeout_at(deadline, exchange).await.ok()
            }
        };
        let (head, connection) = exchanged
            .ok_or_else(|| ForwardError::timed_out(authority, "waiting for the response"))?
            .map_err(|error| error.for_client(authority))?;

        let body = match client_upgrade {
            Some(client_upgrade) if head.parts.status == StatusCode::SWITCHING_PROTOCOLS => {
                // The connection now belongs to the tunnel.
                tokio::spawn(tunnel(
                    Arc::clone(&route.router),
                    client_upgrade,
                    (*connection).into_io(),
                ));
                UpstreamBody::empty()
            }
            _ if head.parts.status == StatusCode::SWITCHING_PROTOCOLS => {
                // A switch the client did not ask for cannot be passed on.
                return Err(ForwardError::Upstream {
                    upstream: authority.to_string(),
                    source: h1::Error::Status(101),
                });
            }
            _ => UpstreamBody::new(
                connection,
                head.framing,
                head.keep_alive,
                upstreams.pool(index).map(Arc::clone),
            )
            .with_lines(head.lines),
        };
        Ok(Response::from_parts(head.parts, body))
    }
}

/// Picks the upstream, takes a pooled connection to it if there is one, and
/// encodes the request head (into that connection's buffer).
fn prepare(
    (route, now): (&Route, Instant),
    parts: request::Parts,
    (plain, fields_as): (Option<&PlainFields>, FieldsAs),
    context: Context,
    upgrade: bool,
    has_body: bool,
) -> Option<(usize, Option<Box<Connection>>, Encoded)> {
    let (index, _) = route.upstreams.pick()?;
    let mut pooled = route.upstreams.pool(index)?.take(now);
    let framing = h1::request_framing(&parts.headers, has_body);
    let mut head = pooled
        .as_mut()
        .map(|connection| connection.take_head_buffer())
        .unwrap_or_default();
    encode(&parts, plain, context, upgrade, route, framing, &mut head);
    let request = Encoded {
        head,
        method: parts.method,
        fields_as,
        framing,
    };
    Some((index, pooled, request))
}

/// A request head written for the upstream, and what its answer is read by.
struct Encoded {
    head: Vec<u8>,
    method: Method,
    fields_as: FieldsAs,
    framing: RequestFraming,
}

/// Writes the upstream's request head into `out`. The client's head is not
/// edited: the upstream's is written from it with the rewrite applied field
/// by field.
fn encode(
    parts: &request::Parts,
    plain: Option<&PlainFields>,
    context: Context,
    upgrade: bool,
    route: &Route,
    framing: RequestFraming,
    out: &mut Vec<u8>,
) {
    let forwarded = Forwarded {
        forwarded_for: &context.forwarded_for,
        proto: context.proto,
        host: &context.host,
        client_subject: context.client_subject,
    };
    let route_headers = &route.request_headers;
    match plain {
        Some(fields) => {
            let connection = fields.connection_values();
            let rewrite = RequestRewrite::new(connection, upgrade, forwarded, route_headers);
            h1::encode_plain_request(parts, fields, &rewrite, out);
        }
        None => {
            let connection = headers::connection_values(&parts.headers);
            let rewrite = RequestRewrite::new(connection, upgrade, forwarded, route_headers);
            h1::encode_request(parts, &rewrite, framing, out);
        }
    }
}

enum SendError {
    Connect(ConnectError),
    Http(h1::Error),
}

impl SendError {
    /// What the client is told, naming the upstream tried.
    fn for_client(self, authority: &Authority) -> ForwardError {
        let upstream = || authority.to_string();
        match self {
            Self::Connect(ConnectError::Timeout) => {
                ForwardError::timed_out(authority, "connecting")
            }
            Self::Connect(source) => ForwardError::Connect {
                upstream: upstream(),
                source,
            },
            Self::Http(source) => ForwardError::Upstream {
                upstream: upstream(),
                source,
            },
        }
    }
}

/// Sends on the pooled connection when there is one, else on a new one. A
/// pooled connection can be closed by the upstream just as it is picked
/// (its idle timeout); a request without a body whose method is idempotent
/// then goes once more on a new connection.
async fn exchange<B: Upload>(
    pooled: Option<Box<Connection>>,
    authority: &Authority,
    connect_timeout: Duration,
    request: Encoded,
    mut body: Option<B>,
) -> Result<(h1::ResponseHead, Box<Connection>), SendError> {
    let Encoded {
        mut head,
        method,
        fields_as,
        framing,
    } = request;
    let retryable = body.is_none() && method.is_idempotent();
    if let Some(mut connection) = pooled {
        match connection
            .send_head(head, (&method, fields_as), framing, body.take())
            .await
        {
            Ok(response) => return Ok((response, connection)),
            Err(error) if retryable && error.is_stale_connection() => {
                tracing::debug!(upstream = %authority, %error, "pooled connection was closed; retrying on a new one");
                head = connection.take_head_buffer();
            }
            Err(error) => return Err(SendError::Http(error)),
        }
    }
    // Boxed: connecting is the rare path, and its future would otherwise
    // make every request's future larger.
    let mut connection = Box::pin(Connection::open(authority, connect_timeout))
        .await
        .map_err(SendError::Connect)?;
    let response = connection
        .send_head(head, (&method, fields_as), framing, body)
        .await
        .map_err(SendError::Http)?;
    Ok((response, connection))
}

/// Copies bytes both ways between an upgraded client and the upstream
/// connection, starting with what the upstream sent past its 101.
async fn tunnel(
    router: Arc<str>,
    client: hyper::upgrade::OnUpgrade,
    (mut upstream, early): (TcpStream, BytesMut),
) {
    let client = match client.await {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(router = %router, %error, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    if !early.is_empty() {
        if let Err(error) = client.write_all(&early).await {
            tracing::debug!(router = %router, %error, "tunnel closed with an error");
            return;
        }
    }
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(router = %router, %error, "tunnel closed with an error");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Reads one request head from `stream`.
    async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    }

    #[tokio::test]
    async fn a_pooled_connection_found_closed_sends_the_same_head_on_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let upstream = tokio::spawn(async move {
            // The pooled connection: closed by the upstream as the request arrives.
            let (mut first, _) = listener.accept().await.unwrap();
            let on_first = read_request(&mut first).await;
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            let on_second = read_request(&mut second).await;
            second
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            (on_first, on_second)
        });
        let pooled = Connection::open(&authority, Duration::from_secs(1))
            .await
            .unwrap();
        let head = b"GET /x HTTP/1.1\r\nhost: up.test\r\nx-forwarded-for: 192.0.2.1\r\n\r\n";
        let request = Encoded {
            head: head.to_vec(),
            method: Method::GET,
            fields_as: FieldsAs::Map,
            framing: RequestFraming::Empty,
        };
        let exchanged = tokio::time::timeout(
            Duration::from_secs(5),
            exchange(
                Some(pooled),
                &authority,
                Duration::from_secs(1),
                request,
                None::<http_body_util::Empty<bytes::Bytes>>,
            ),
        )
        .await
        .expect("the retry never got an answer");
        let Ok((response, _)) = exchanged else {
            panic!("the request was not retried");
        };
        assert_eq!(response.parts.status, StatusCode::OK);
        let (on_first, on_second) = upstream.await.unwrap();
        assert_eq!(on_first, head);
        assert_eq!(on_second, head, "the retry must send the same head");
    }
}
