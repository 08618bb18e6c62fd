//! An answer's head as an HTTP/2 header block.

use bytes::BytesMut;
use http::{header, response, HeaderMap};

use super::hpack;
use super::request::is_connection_specific;

/// Encodes `:status` and the answer's fields, less those that describe an
/// HTTP/1 connection (RFC 9113 §8.2.2): an HTTP/2 client treats a response
/// carrying one as malformed.
pub(crate) fn encode_head(parts: &response::Parts, block: &mut BytesMut) {
    hpack::encode_status(parts.status.as_u16(), block);
    encode_fields(&parts.headers, block);
}

/// Encodes header fields (of a head, or trailers).
pub(crate) fn encode_fields(fields: &HeaderMap, block: &mut BytesMut) {
    for (name, value) in fields {
        if is_connection_specific(name) || name == header::TE {
            continue;
        }
        hpack::encode_field(name.as_str().as_bytes(), value.as_bytes(), block);
    }
}
