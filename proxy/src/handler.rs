//! Per-request dispatch: host and path to a route, or a local answer.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use portcullis_config::model::{Entrypoint, Mtls};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::access_log::{AccessRecord, Logged};
use crate::certificate;
use crate::client_verdicts::ClientVerdicts;
use crate::close_notify::{closes_connection, Ending, LastAnswer};
use crate::dataplane::DataPlane;
use crate::forward::{self, forward, ForwardError, RequestBody};
use crate::h1::UpstreamBody;
use crate::idle_watch::Watch;
use crate::route_table::Route;

/// The body of every response the proxy sends: an upstream's streamed body
/// or a small local one, counted for the access log.
pub(crate) type ProxyBody = Logged<Either<UpstreamBody, Full<Bytes>>>;

type Plain = Response<Either<UpstreamBody, Full<Bytes>>>;

/// RFC 8555 §8.3: where HTTP-01 tokens are fetched.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What is known about a client connection once it is accepted.
#[derive(Debug)]
pub(crate) struct ConnectionInfo {
    /// Which listener accepted it.
    pub entrypoint: Entrypoint,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP address as the `X-Forwarded-For` value, formatted
    /// once per connection rather than once per request.
    pub forwarded_for: HeaderValue,
    /// The TLS SNI name, lower-case (websecure only).
    pub sni: Option<Box<str>>,
    /// The client's certificate chain, verified at the handshake against the
    /// union of client CAs (websecure only).
    pub client_chain: Option<Vec<CertificateDer<'static>>>,
    /// The chain's verdicts against the CAs of the routes it reached.
    pub client_verdicts: ClientVerdicts<dyn ClientCertVerifier>,
    /// HTTP/1 connections: watched for idling past `header_read_timeout`.
    pub idle: Option<Arc<Watch>>,
    /// HTTP/1 connections over TLS: told when their last answer is done.
    pub ending: Option<Arc<Ending>>,
}

/// Answers one request, whatever carries its body (hyper, or a test).
///
/// Routing is decided before the returned future is built, so that the
/// future only holds what outlives the decision: this future is moved whole
/// (into each HTTP/2 stream's task, into the HTTP/1 dispatcher) before it
/// first runs, and forwarding, most of a request's state, is boxed apart.
pub(crate) fn handle<B: RequestBody>(
    plane: Arc<DataPlane>,
    connection: Arc<ConnectionInfo>,
    request: Request<B>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send {
    // A whole head has arrived: the connection is busy until the answer is done.
    let in_flight = connection.idle.as_ref().map(Watch::begin);
    let ending = connection
        .ending
        .as_ref()
        .filter(|_| match request.body().plain_fields() {
            Some(fields) => fields.closes(),
            None => closes_connection(&request),
        })
        .map(Arc::clone);
    let mut record = plane.access_log().then(|| {
        Box::new(AccessRecord {
            start: Instant::now(),
            client: connection.peer,
            entrypoint: connection.entrypoint.as_str(),
            method: request.method().clone(),
            host: request_host(&request).unwrap_or_default().to_owned(),
            path: request.uri().path().to_owned(),
            router: None,
            service: None,
            status: 0,
        })
    });
    let routed = route_request(&plane, &connection, request, record.as_deref_mut());
    async move {
        let (response, route) = match routed {
            Routed::Local(response) => (response, None),
            Routed::Forward(route, forwarding) => (forwarding.await, Some(route)),
        };
        let status = response.status().as_u16();
        match &route {
            Some(route) => route.metrics.record_response(status),
            None => plane.metrics().unrouted.record(status),
        }
        if let Some(record) = record.as_deref_mut() {
            record.status = status;
        }
        // After a 101 the connection is a tunnel, not an answer that ends.
        let last = ending
            .filter(|_| status != StatusCode::SWITCHING_PROTOCOLS.as_u16())
            .map(LastAnswer::new);
        let (parts, body) = response.into_parts();
        Ok(Response::from_parts(
            parts,
            Logged::new(body, record, in_flight, last),
        ))
    }
}

/// What to do with a request: answer it here, or forward it on a route.
enum Routed {
    Local(Plain),
    Forward(Arc<Route>, Pin<Box<dyn Future<Output = Plain> + Send>>),
}

impl From<Plain> for Routed {
    fn from(response: Plain) -> Self {
        Self::Local(response)
    }
}

fn route_request<B: RequestBody>(
    plane: &DataPlane,
    connection: &ConnectionInfo,
    request: Request<B>,
    record: Option<&mut AccessRecord>,
) -> Routed {
    let entrypoint = connection.entrypoint;
    if entrypoint == Entrypoint::Web {
        if let Some(token) = request.uri().path().strip_prefix(ACME_CHALLENGE_PREFIX) {
            return match plane.challenges().http01(token) {
                Some(key_authorization) => text(
                    StatusCode::OK,
                    Bytes::copy_from_slice(key_authorization.as_bytes()),
                ),
                None => local(
                    StatusCode::NOT_FOUND,
                    "no pending ACME challenge for this token\n",
                ),
            }
            .into();
        }
    }
    let Some(raw_host) = request_host(&request) else {
        return local(StatusCode::BAD_REQUEST, "request has no Host\n").into();
    };
    // The Host header's value is reused as is (it shares hyper's read
    // buffer); only an authority from the URI needs a new value.
    let host_value = match (request.uri().authority(), request.body().plain_fields()) {
        (Some(authority), _) => HeaderValue::from_str(authority.as_str()).ok(),
        (None, Some(fields)) => fields.host_value(),
        (None, None) => request.headers().get(header::HOST).cloned(),
    };
    let Some(host_value) = host_value else {
        return local(StatusCode::BAD_REQUEST, "invalid Host\n").into();
    };
    let host = normalize(raw_host);
    if let Some(sni) = connection.sni.as_deref() {
        // RFC 9110 §15.5.20: this connection's certificate was chosen for
        // another name; the client must open a connection for this one.
        if sni != host {
            return local(
                StatusCode::MISDIRECTED_REQUEST,
                "Host does not match the TLS server name of this connection\n",
            )
            .into();
        }
    }
    let table = plane.routes();
    let Some(route) = table.lookup(entrypoint, &host, request.uri().path()) else {
        if entrypoint == Entrypoint::Web && table.serves_host(Entrypoint::Websecure, &host) {
            return redirect_to_https(plane, &host, &request).into();
        }
        // Host allowlist: a Host no router serves never reaches a backend.
        if !table.serves_host(entrypoint, &host) {
            return local(plane.unknown_host_status(), "no route for this host\n").into();
        }
        return local(StatusCode::NOT_FOUND, "no route for this host and path\n").into();
    };
    let route = Arc::clone(route);
    drop(table);
    if let Some(record) = record {
        record.router = Some(Arc::clone(&route.router));
        record.service = Some(Arc::clone(route.upstreams.name()));
    }
    let Ok(client_subject) = client_subject(&route, connection) else {
        return local(
            StatusCode::FORBIDDEN,
            "this route requires a client certificate issued by its client CA\n",
        )
        .into();
    };
    let context = forward::Context {
        forwarded_for: connection.forwarded_for.clone(),
        proto: HeaderValue::from_static(match entrypoint {
            Entrypoint::Web => "http",
            Entrypoint::Websecure => "https",
        }),
        host: host_value,
        client_subject,
        // Plain requests come from a loop that answers one at a time.
        watch: connection
            .idle
            .as_ref()
            .filter(|_| request.body().plain_fields().is_some())
            .map(Arc::clone),
    };
    let forwarding = Box::pin(forward_or_answer(Arc::clone(&route), request, context));
    Routed::Forward(route, forwarding)
}

/// Forwards on `route`; a failure becomes the local 502 or 504 answer.
///
/// Not an `async fn`, for the reason [`forward()`] gives.
fn forward_or_answer<B: RequestBody>(
    route: Arc<Route>,
    request: Request<B>,
    context: forward::Context,
) -> impl Future<Output = Plain> + Send {
    let started = Instant::now();
    // `map`, not an `async` block: awaiting the forwarding future from a
    // block that owns it would hold it twice.
    forward(Arc::clone(&route), request, context, started).map(move |forwarded| {
        route.metrics.observe_upstream(started.elapsed());
        answer(&route, forwarded)
    })
}

/// The client's response: the upstream's, or the local 502 or 504.
fn answer(route: &Route, forwarded: Result<Response<UpstreamBody>, ForwardError>) -> Plain {
    match forwarded {
        Ok(response) => response.map(Either::Left),
        Err(error) => {
            let status = error.status();
            tracing::warn!(
                router = %route.router,
                service = %route.upstreams.name(),
                %status,
                %error,
                "upstream request failed"
            );
            let body = if status == StatusCode::GATEWAY_TIMEOUT {
                "upstream timed out\n"
            } else {
                "upstream unavailable\n"
            };
            local(status, body)
        }
    }
}

/// A `mtls = "required"` route got no certificate that verifies against its CA.
struct ClientCertRequired;

/// Enforces the route's client-certificate policy; returns the subject to pass on.
fn client_subject(
    route: &Route,
    connection: &ConnectionInfo,
) -> Result<Option<HeaderValue>, ClientCertRequired> {
    let Some(verifier) = route
        .client_auth
        .as_ref()
        .filter(|_| route.mtls != Mtls::Off)
    else {
        return Ok(None);
    };
    let verified = match connection.client_chain.as_deref() {
        // No certificate: nothing to verify or to keep.
        None | Some([]) => None,
        Some(chain) => connection
            .client_verdicts
            .subject(verifier, || verified_subject(&**verifier, chain)),
    };
    if route.mtls == Mtls::Required && verified.is_none() {
        return Err(ClientCertRequired);
    }
    Ok(verified)
}

/// The subject of `chain`'s leaf when the chain verifies against
/// `verifier`'s CA now: what an mTLS route passes on.
pub(crate) fn verified_subject(
    verifier: &dyn ClientCertVerifier,
    chain: &[CertificateDer<'_>],
) -> Option<HeaderValue> {
    let (leaf, rest) = chain.split_first()?;
    verifier
        .verify_client_cert(leaf, rest, UnixTime::now())
        .ok()?;
    HeaderValue::from_str(&certificate::subject(leaf)?).ok()
}

/// The Host of a request: the URI authority (HTTP/2, absolute-form) or the Host header.
fn request_host<B: RequestBody>(request: &Request<B>) -> Option<&str> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str());
    }
    match request.body().plain_fields() {
        Some(fields) => fields.host(),
        None => request.headers().get(header::HOST)?.to_str().ok(),
    }
}

/// Lower-cases and strips a port and trailing dot, borrowing when already clean.
fn normalize(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

fn redirect_to_https<B>(plane: &DataPlane, host: &str, request: &Request<B>) -> Plain {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = match plane.https_port() {
        443 => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    };
    let mut response = local(StatusCode::PERMANENT_REDIRECT, "");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn text(status: StatusCode, body: Bytes) -> Plain {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // Marks answers Portcullis gave itself, so probes (and operators with
    // curl -i) can tell them from a backend's.
    response
        .headers_mut()
        .insert(LOCAL_ANSWER, HeaderValue::from_static("1"));
    response
}

/// Header on every answer Portcullis gives itself instead of a backend.
pub const LOCAL_ANSWER: http::HeaderName = http::HeaderName::from_static("x-portcullis-local");

fn local(status: StatusCode, body: &'static str) -> Plain {
    text(status, Bytes::from_static(body.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;
    use http_body_util::Empty;

    #[tokio::test]
    async fn only_an_answer_after_which_the_connection_closes_marks_it_ending() {
        let plane = crate::dataplane::tests::plane();
        let cases = [
            (Version::HTTP_11, None, false),
            (Version::HTTP_11, Some("close"), true),
            (Version::HTTP_10, None, true),
            (Version::HTTP_10, Some("keep-alive"), false),
            (Version::HTTP_2, None, false),
        ];
        for (version, connection, ends) in cases {
            let ending = Arc::new(Ending::default());
            let info = Arc::new(ConnectionInfo {
                entrypoint: Entrypoint::Websecure,
                peer: "127.0.0.1:40000".parse().unwrap(),
                forwarded_for: HeaderValue::from_static("127.0.0.1"),
                sni: None,
                client_chain: None,
                client_verdicts: Default::default(),
                idle: None,
                ending: Some(Arc::clone(&ending)),
            });
            let mut request = Request::builder()
                .version(version)
                .uri("/")
                .header(header::HOST, "nowhere.test");
            if let Some(connection) = connection {
                request = request.header(header::CONNECTION, connection);
            }
            let request = request.body(Empty::<Bytes>::new()).unwrap();
            // No router serves the host: a local answer, like any other.
            let Ok(response) = handle(Arc::clone(&plane), info, request).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            assert!(!ending.is_set(), "not before its body is done");
            drop(response);
            assert_eq!(
                ending.is_set(),
                ends,
                "{version:?}, Connection: {connection:?}"
            );
        }
    }

    #[test]
    fn hosts_are_normalized_without_allocating_when_clean() {
        assert!(matches!(
            normalize("a.test"),
            std::borrow::Cow::Borrowed("a.test")
        ));
        assert_eq!(normalize("A.Test:8443"), "a.test");
        assert_eq!(normalize("a.test."), "a.test");
        assert_eq!(normalize("[::1]:8443"), "[::1]");
    }
}
