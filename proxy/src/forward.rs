//! Sending a routed request to its upstream and streaming the answer back.

use std::error::Error as _;
use std::sync::Arc;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::headers::{self, Forwarded};
use crate::route_table::Route;

/// Why a request could not be forwarded; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    /// The upstream refused or reset the connection, or sent garbage.
    #[error("upstream {upstream}: {source}")]
    Upstream {
        /// The address tried.
        upstream: String,
        /// What the client said.
        #[source]
        source: hyper_util::client::legacy::Error,
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
            Self::Upstream { .. } | Self::NoUpstream => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The request context forwarding needs besides the request.
#[derive(Debug)]
pub(crate) struct Context {
    /// The client's IP address.
    pub client_ip: std::net::IpAddr,
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
) -> Result<Response<Incoming>, ForwardError> {
    let upstreams = &route.upstreams;
    let authority = upstreams.pick().ok_or(ForwardError::NoUpstream)?.clone();
    let upgrade = request.version() == Version::HTTP_11 && headers::is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));

    let (mut parts, body) = request.into_parts();
    headers::rewrite_request(
        &mut parts.headers,
        upgrade,
        Forwarded {
            client_ip: context.client_ip,
            proto: context.proto,
            host: &context.host,
            client_subject: context.client_subject,
        },
    );
    for (name, value) in &route.request_headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    // Parts built from a valid authority and path always form a valid URI.
    parts.uri = Uri::from_parts(uri).unwrap_or_default();
    parts.version = Version::HTTP_11;

    let sent = upstreams.client().request(Request::from_parts(parts, body));
    let mut response = match tokio::time::timeout(upstreams.response_timeout(), sent).await {
        Err(_) => {
            return Err(ForwardError::Timeout {
                upstream: authority.to_string(),
                phase: "waiting for the response",
            })
        }
        Ok(Err(source)) if is_timeout(&source) => {
            return Err(ForwardError::Timeout {
                upstream: authority.to_string(),
                phase: "connecting",
            })
        }
        Ok(Err(source)) => {
            return Err(ForwardError::Upstream {
                upstream: authority.to_string(),
                source,
            })
        }
        Ok(Ok(response)) => response,
    };

    match client_upgrade {
        Some(client_upgrade) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(
                Arc::clone(&route.router),
                client_upgrade,
                upstream_upgrade,
            ));
        }
        _ => headers::strip_hop_by_hop(response.headers_mut(), false),
    }
    Ok(response)
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

/// True when the error chain holds an I/O timeout (the connector's connect timeout).
fn is_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = current.source();
    }
    false
}
