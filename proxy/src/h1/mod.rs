//! HTTP/1.1 to upstreams, spoken inside the request's own task.
//!
//! hyper's client runs each upstream connection as a task of its own and
//! passes every request and response across channels to it. At the edge
//! nearly every exchange is one short request on a pooled keep-alive
//! connection, and those hand-offs cost more than the protocol work itself.
//! Here the task serving the client writes the request head, streams the
//! body, parses the response head (httparse) and decodes the response body
//! as the client consumes it; the connection returns to its pool the moment
//! the body ends.

mod body;
mod connection;
mod head;

pub(crate) use body::UpstreamBody;
pub(crate) use connection::{make_room, request_framing, ConnectError, Connection};
pub(crate) use head::{
    encode_plain_request, encode_request, parse_length, parse_response, FieldLines, FieldsAs,
    RequestFraming, ResponseHead,
};

/// A request body's error, whatever the body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The upstream closed the connection without sending anything.
    #[error("upstream closed the connection before responding")]
    Closed,
    /// The connection failed before any response byte arrived.
    #[error("connection reset before the response: {0}")]
    Reset(#[source] std::io::Error),
    /// The connection failed part way through the response.
    #[error("connection failed mid-response: {0}")]
    Io(#[source] std::io::Error),
    /// The upstream closed the connection part way through the response.
    #[error("upstream closed the connection mid-response")]
    Truncated,
    /// The response head is not HTTP/1.x.
    #[error("invalid response head: {0}")]
    Malformed(httparse::Error),
    /// The response head is larger than accepted.
    #[error("response head larger than 64 KiB")]
    HeadTooLarge,
    /// A status code outside 100–999.
    #[error("invalid status code {0}")]
    Status(u16),
    /// A header name that is not a token.
    #[error("invalid header name in the response")]
    HeaderName,
    /// A header value with bytes not allowed in one.
    #[error("invalid header value in the response")]
    HeaderValue,
    /// A missing, malformed or contradictory `Content-Length`.
    #[error("invalid Content-Length in the response")]
    ContentLength,
    /// A chunk size line or chunk delimiter that is not valid.
    #[error("invalid chunked encoding in the response body")]
    Chunk,
    /// The client's request body failed while it was being sent.
    #[error("client request body failed: {0}")]
    RequestBody(#[source] BoxError),
}

impl Error {
    /// True when the connection failed before the upstream answered at all,
    /// as a pooled connection does when the upstream closed it while idle:
    /// a request without a body can safely go again on a new connection.
    pub(crate) fn is_stale_connection(&self) -> bool {
        matches!(self, Self::Closed | Self::Reset(_))
    }
}
