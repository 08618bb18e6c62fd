//! HTTP/2 from clients, served by a connection loop of our own.
//!
//! Through hyper, an HTTP/2 request cost a task of its own, the h2 crate's
//! stream store behind a lock, frames moved through its queues, and an HPACK
//! encoder that hashed every response field for its table: more than half
//! of the proxy's user time per request. Here a connection is one task that
//! reads frames, starts the handler for each request, and writes answers and
//! body frames as they become ready, all in one buffer written once per pass.
//!
//! The protocol is RFC 9113 with RFC 7541 header compression ([`hpack`]):
//! stream states and their errors, flow control both ways (a request body's
//! window opens as the forwarder takes it), SETTINGS, PING, GOAWAY for a
//! drain. It does not push, and it does not offer extended CONNECT (RFC 8441),
//! which hyper's server did not offer here either.

mod body;
mod connection;
mod frame;
mod hpack;
mod request;
mod response;
mod work;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::dataplane::DataPlane;
use crate::handler::ConnectionInfo;
use crate::idle_watch::Watch;

pub(crate) use connection::Ended;

/// Whether `early`, what an HTTP/1 parser refused, is the start of HTTP/2's
/// preface: at least its request line, the part that parser stops at.
pub(crate) fn starts_preface(early: &[u8]) -> bool {
    const REQUEST_LINE: usize = b"PRI * HTTP/2.0".len();
    let seen = early.len().min(frame::PREFACE.len());
    seen >= REQUEST_LINE && early[..seen] == frame::PREFACE[..seen]
}

/// Serves an HTTP/2 connection (ALPN `h2`) until it ends.
///
/// `watch` tells the connection when its worker drains (it then sends
/// GOAWAY and answers the streams it has) and when it has had no request in
/// flight for `server.header_read_timeout`.
pub(crate) async fn serve<I>(
    io: I,
    plane: Arc<DataPlane>,
    info: Arc<ConnectionInfo>,
    watch: Arc<Watch>,
) -> Result<(), Ended>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    connection::Connection::new(io, plane, info, watch)
        .run()
        .await
}
