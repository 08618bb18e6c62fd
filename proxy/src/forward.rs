//! Sending a routed request to its upstream and streaming the answer back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::uri::Authority;
use http::{request, HeaderValue, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::h1::{self, ConnectError, Connection, UpstreamBody};
use crate::headers::{self, Forwarded, RequestRewrite};
use crate::pool::Pool;
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
}

/// Forwards `request` to the next upstream of `route`.
///
/// Bodies stream both ways. An HTTP/1.1 `Upgrade` that the upstream accepts
/// (101) becomes a byte tunnel between client and upstream.
///
/// The request is taken apart before the future is built, and the future
/// owns the parts: an `async fn` would hold its arguments twice (as passed,
/// and moved into its body), and this future is moved whole on every request.
pub(crate) fn forward(
    route: Arc<Route>,
    mut request: Request<Incoming>,
    context: Context,
) -> impl Future<Output = Result<Response<UpstreamBody>, ForwardError>> + Send {
    let upgrade = request.version() == Version::HTTP_11 && headers::is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let body = (!body.is_end_stream()).then_some(body);
    async move {
        // The client's head is not edited: the upstream's is written from
        // it with the rewrite applied field by field.
        let rewrite = RequestRewrite::new(
            &parts.headers,
            upgrade,
            Forwarded {
                forwarded_for: &context.forwarded_for,
                proto: context.proto,
                host: &context.host,
                client_subject: context.client_subject,
            },
            &route.request_headers,
        );
        send(&route, &parts, &rewrite, body, client_upgrade).await
    }
}

/// Exchanges with the next upstream of `route`, and turns the answer into the
/// client's response, or a tunnel.
async fn send(
    route: &Route,
    parts: &request::Parts,
    rewrite: &RequestRewrite<'_>,
    body: Option<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<UpstreamBody>, ForwardError> {
    let upstreams = &route.upstreams;
    let (index, authority) = upstreams.pick().ok_or(ForwardError::NoUpstream)?;
    let pool = upstreams.pool(index).ok_or(ForwardError::NoUpstream)?;
    let timed_out = |phase| ForwardError::Timeout {
        upstream: authority.to_string(),
        phase,
    };
    let exchange = exchange(
        pool,
        authority,
        upstreams.connect_timeout(),
        parts,
        rewrite,
        body,
    );
    let (head, connection) = match tokio::time::timeout(upstreams.response_timeout(), exchange)
        .await
    {
        Err(_) => return Err(timed_out("waiting for the response")),
        Ok(Err(SendError::Connect(ConnectError::Timeout))) => return Err(timed_out("connecting")),
        Ok(Err(SendError::Connect(source))) => {
            return Err(ForwardError::Connect {
                upstream: authority.to_string(),
                source,
            })
        }
        Ok(Err(SendError::Http(source))) => {
            return Err(ForwardError::Upstream {
                upstream: authority.to_string(),
                source,
            })
        }
        Ok(Ok(exchanged)) => exchanged,
    };

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
            Some(Arc::clone(pool)),
        ),
    };
    Ok(Response::from_parts(head.parts, body))
}

enum SendError {
    Connect(ConnectError),
    Http(h1::Error),
}

/// Sends on a pooled connection when there is one, else on a new one. A
/// pooled connection can be closed by the upstream just as it is picked
/// (its idle timeout); a request without a body whose method is idempotent
/// then goes once more on a new connection.
async fn exchange(
    pool: &Pool,
    authority: &Authority,
    connect_timeout: Duration,
    parts: &request::Parts,
    rewrite: &RequestRewrite<'_>,
    mut body: Option<Incoming>,
) -> Result<(h1::ResponseHead, Box<Connection>), SendError> {
    let retryable = body.is_none() && parts.method.is_idempotent();
    if let Some(mut connection) = pool.take() {
        match connection.send(parts, rewrite, body.take()).await {
            Ok(head) => return Ok((head, connection)),
            Err(error) if retryable && error.is_stale_connection() => {
                tracing::debug!(upstream = %authority, %error, "pooled connection was closed; retrying on a new one");
            }
            Err(error) => return Err(SendError::Http(error)),
        }
    }
    // Boxed: connecting is the rare path, and its future would otherwise
    // make every request's future larger.
    let mut connection = Box::pin(Connection::open(authority, connect_timeout))
        .await
        .map_err(SendError::Connect)?;
    let head = connection
        .send(parts, rewrite, body)
        .await
        .map_err(SendError::Http)?;
    Ok((head, connection))
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
