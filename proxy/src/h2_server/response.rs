//! An answer's head as an HTTP/2 header block.

use bytes::BytesMut;
use http::{header, response, HeaderMap};

use super::hpack;
use super::request::is_connection_specific;
use crate::h1::FieldLines;

/// Encodes `:status` and the answer's fields, less those that describe an
/// HTTP/1 connection (RFC 9113 §8.2.2): an HTTP/2 client treats a response
/// carrying one as malformed.
///
/// An upstream's fields come as `lines`, as it wrote them (already without
/// hop-by-hop fields and `Content-Length`), when the forwarder kept them so.
/// A `Date` is added when neither has one (RFC 9110 §6.6.1), as hyper did.
pub(crate) fn encode_head(
    parts: &response::Parts,
    lines: Option<&FieldLines>,
    block: &mut BytesMut,
) {
    block.reserve(lines.map_or(0, |lines| lines.lines.len()) + 64);
    hpack::encode_status(parts.status.as_u16(), block);
    encode_fields(&parts.headers, block);
    let mut dated = parts.headers.contains_key(header::DATE);
    if let Some(lines) = lines {
        dated |= lines.dated;
        encode_lines(&lines.lines, block);
        if let Some(length) = lines.content_length {
            let mut digits = [0u8; 20];
            hpack::encode_field(
                b"content-length",
                crate::headers::decimal(length, &mut digits),
                block,
            );
        }
    }
    if !dated {
        let mut date = [0u8; 64];
        let mut text = &mut date[..];
        crate::date::extend(&mut text);
        let written = 64 - text.len();
        hpack::encode_field(b"date", &date[..written], block);
    }
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

/// Encodes `name: value\r\n` lines, as [`FieldLines`] writes them, with
/// names lower-cased (RFC 9113 §8.2.1).
fn encode_lines(mut lines: &[u8], block: &mut BytesMut) {
    let mut short = [0u8; 64];
    let mut long = Vec::new();
    // A name is a token (no colon), a value holds no CR: httparse checked.
    while let Some(colon) = memchr::memchr(b':', lines) {
        let name = &lines[..colon];
        let rest = lines.get(colon + 2..).unwrap_or_default();
        let end = memchr::memchr(b'\r', rest).unwrap_or(rest.len());
        let value = &rest[..end];
        lines = rest.get(end + 2..).unwrap_or_default();
        let lower = match short.get_mut(..name.len()) {
            Some(lower) => {
                lower.copy_from_slice(name);
                lower
            }
            None => {
                long.clear();
                long.extend_from_slice(name);
                &mut long[..]
            }
        };
        lower.make_ascii_lowercase();
        hpack::encode_field(lower, value, block);
    }
}
