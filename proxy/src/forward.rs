//! Sending a routed request to its upstream and streaming the answer back.

use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::headers::{self, Forwarded};
use crate::pool::{self, ConnectError, Lease, PooledBody};
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
        /// What hyper said.
        #[source]
        source: hyper::Error,
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
    pub proto: &'static str,
    /// The client's Host, as sent.
    pub host: HeaderValue,
    /// Verified client-certificate subject to pass on.
    pub client_subject: Option<HeaderValue>,
}

/// Forwards `request` to the next upstream of `route`.
///
/// Bodies stream both ways. An HTTP/1.1 `Upgrade` that the upstream accepts
/// (101) becomes a byte tunnel between client and upstream.
pub(crate) async fn forward(
    route: &Route,
    mut request: Request<Incoming>,
    context: Context,
) -> Result<Response<PooledBody>, ForwardError> {
    let upstreams = &route.upstreams;
    let (index, authority) = upstreams.pick().ok_or(ForwardError::NoUpstream)?;
    let pool = upstreams.pool(index).ok_or(ForwardError::NoUpstream)?;
    let upgrade = request.version() == Version::HTTP_11 && headers::is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));

    // Rewritten in place: the request is moved as little as possible.
    let headers = request.headers_mut();
    headers::rewrite_request(
        headers,
        upgrade,
        Forwarded {
            forwarded_for: &context.forwarded_for,
            proto: context.proto,
            host: &context.host,
            client_subject: context.client_subject,
        },
    );
    for (name, value) in &route.request_headers {
        headers.insert(name.clone(), value.clone());
    }
    // Origin form (RFC 9112 §3.2.1): the upstream gets the path and query;
    // the Host header (set above) carries the authority.
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
    }
    *request.version_mut() = Version::HTTP_11;

    let timed_out = |phase| ForwardError::Timeout {
        upstream: authority.to_string(),
        phase,
    };
    let exchange = send(pool, authority, upstreams.connect_timeout(), request);
    let (mut response, sender) = match tokio::time::timeout(upstreams.response_timeout(), exchange)
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

    let lease = match client_upgrade {
        Some(client_upgrade) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(
                Arc::clone(&route.router),
                client_upgrade,
                upstream_upgrade,
            ));
            // The connection now belongs to the tunnel.
            None
        }
        _ => {
            headers::strip_hop_by_hop(response.headers_mut(), false);
            Some(Lease::new(Arc::clone(pool), sender))
        }
    };
    Ok(response.map(|body| PooledBody::new(body, lease)))
}

enum SendError {
    Connect(ConnectError),
    Http(hyper::Error),
}

/// Sends on a pooled connection when one is ready, else on a new one. A
/// pooled connection can be closed by the upstream just as we pick it (its
/// idle timeout); when hyper hands the request back unsent, it goes once
/// more on a new connection.
async fn send(
    pool: &pool::Pool,
    authority: &http::uri::Authority,
    connect_timeout: std::time::Duration,
    request: Request<Incoming>,
) -> Result<(Response<Incoming>, pool::Sender), SendError> {
    let request = match pool.take() {
        Some(mut sender) => match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, sender)),
            Err(mut error) => match error.take_message() {
                Some(request) => request,
                None => return Err(SendError::Http(error.into_error())),
            },
        },
        None => request,
    };
    // Boxed: connecting is the rare path, and its future would otherwise
    // make every request's future (moved on each spawn) larger.
    let mut sender = Box::pin(pool::connect(authority, connect_timeout))
        .await
        .map_err(SendError::Connect)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(SendError::Http)?;
    Ok((response, sender))
}

/// Copies bytes both ways between an upgraded client and upstream connection.
async fn tunnel(
    router: Arc<str>,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(router = %router, %error, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(router = %router, %error, "tunnel closed with an error");
    }
}
